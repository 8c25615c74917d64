#include "replay/line_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>

namespace tally::replay {
namespace {

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_line_reader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static std::string Gzip(const std::string& in) {
    z_stream z{};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, in.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    return out;
  }
  static std::string Zstd(const std::string& in) {
    std::string out(ZSTD_compressBound(in.size()), '\0');
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return out;
  }
  static std::vector<std::string> ReadAll(const std::string& path, Status* status = nullptr) {
    auto r = LineReader::Open(path);
    EXPECT_TRUE(r.has_value());
    std::vector<std::string> lines;
    std::string_view line;
    while ((*r)->Next(&line)) lines.emplace_back(line);
    if (status) *status = (*r)->status();
    return lines;
  }

  std::filesystem::path dir_;
};

// Big enough to cross the 1 MiB read and decode chunks several times.
std::string Corpus(std::vector<std::string>* lines) {
  std::string text;
  for (int i = 0; i < 60000; ++i) {
    lines->push_back("{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 97, 'x') +
                     "\"}");
    text += lines->back() + (i % 3 == 0 ? "\r\n" : "\n");
  }
  return text;
}

TEST_F(LineReaderTest, PlainGzipAndZstdGiveTheSameLines) {
  std::vector<std::string> want;
  const std::string text = Corpus(&want);
  for (const auto& [name, bytes] :
       std::vector<std::pair<std::string, std::string>>{{"a.ndjson", text},
                                                        {"a.ndjson.gz", Gzip(text)},
                                                        {"a.ndjson.zst", Zstd(text)},
                                                        {"misnamed.txt", Zstd(text)}}) {
    Status st = Ok();
    EXPECT_EQ(ReadAll(Write(name, bytes), &st), want) << name;
    EXPECT_TRUE(st.has_value()) << name;
  }
  auto r = LineReader::Open(Write("b.zst", Zstd(text)));
  EXPECT_EQ((*r)->compression(), Compression::kZstd);
}

TEST_F(LineReaderTest, ConcatenatedGzipMembersAndLastLineWithoutNewline) {
  std::string path = Write("c.gz", Gzip("a\nb\n") + Gzip("c\nd"));
  EXPECT_EQ(ReadAll(path), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(ReadAll(Write("e.ndjson", "x\n\ny")), (std::vector<std::string>{"x", "", "y"}));
  EXPECT_TRUE(ReadAll(Write("empty", "")).empty());
}

TEST_F(LineReaderTest, TruncatedAndCorruptInputIsAnError) {
  std::vector<std::string> lines;
  const std::string text = Corpus(&lines);
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"t.zst", Zstd(text)}, {"t.gz", Gzip(text)}}) {
    Status st = Ok();
    ReadAll(Write(name, bytes.substr(0, bytes.size() / 2)), &st);
    EXPECT_FALSE(st.has_value()) << name;
    EXPECT_EQ(st.error().code, ErrorCode::kDataLoss) << name;
    EXPECT_NE(st.error().message.find(name), std::string::npos) << st.error().message;
  }
  std::string bad = Gzip(text);
  bad[bad.size() / 2] ^= 0x5a;
  bad[bad.size() / 2 + 1] ^= 0x5a;
  Status st = Ok();
  ReadAll(Write("corrupt.gz", bad), &st);
  EXPECT_FALSE(st.has_value());
}

TEST_F(LineReaderTest, MissingFileIsNotFound) {
  auto r = LineReader::Open((dir_ / "nope.ndjson").string());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace tally::replay
