// Replays fuzz corpora through a libFuzzer entry point with any compiler (the normal g++ build
// runs every corpus this way; scripts/fuzz.sh builds the real fuzzers with clang). Each argument is
// a file or a directory of files; every input also runs truncated at a few lengths and with single
// bytes flipped, which keeps the corpus honest as a regression test. Exit code 0 = no check failed.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

void RunVariants(const std::string& bytes) {
  Run(bytes);
  for (size_t cut : {size_t{0}, size_t{1}, bytes.size() / 2, bytes.size() ? bytes.size() - 1 : 0}) {
    Run(bytes.substr(0, cut));
  }
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x20);
    Run(flipped);
  }
}

}  // namespace

int main(int argc, char** argv) {
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::filesystem::path> paths;
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
        paths.push_back(entry.path());
      }
    } else {
      paths.emplace_back(argv[i]);
    }
    for (const auto& path : paths) {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      RunVariants(bytes);
      ++files;
    }
  }
  std::printf("replayed %zu corpus files\n", files);
  return files > 0 ? 0 : 1;
}
