#include "store/data_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace tally::store {

bool ValidDbName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string CurrentDbName(const std::string& root) {
  std::ifstream in(root + "/CURRENT");
  std::string name;
  std::getline(in, name);
  return ValidDbName(name) ? name : "db";
}

Status SetCurrentDbName(const std::string& root, std::string_view name) {
  if (!ValidDbName(name)) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid store directory name '" + std::string(name) + "'", "db");
  }
  const std::string tmp = root + "/CURRENT.tmp", dst = root + "/CURRENT";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Fail(ErrorCode::kUnavailable, tmp + ": " + std::strerror(errno));
  std::string line = std::string(name) + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), dst.c_str()) != 0) {
    return Fail(ErrorCode::kUnavailable, "cannot write " + dst + ": " + std::strerror(errno));
  }
  // The rename itself must reach the disk before the switch is reported done.
  int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Ok();
}

Result<std::string> NewRebuildDbName(const std::string& root) {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "db.rebuild-%Y%m%dT%H%M%SZ", &tm);
  for (int n = 1; n < 1000; ++n) {
    std::string name = n == 1 ? std::string(buf) : std::string(buf) + "-" + std::to_string(n);
    std::error_code ec;
    // create_directory is false (no error) when the directory exists: try the next name.
    if (std::filesystem::create_directory(root + "/" + name, ec)) return name;
    if (ec) {
      return Fail(ErrorCode::kUnavailable,
                  "cannot create " + root + "/" + name + ": " + ec.message());
    }
  }
  return Fail(ErrorCode::kUnavailable, "no free rebuild directory name under " + root);
}

}  // namespace tally::store
