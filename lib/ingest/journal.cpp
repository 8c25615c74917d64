#include "ingest/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace tally::ingest {
namespace {

constexpr std::string_view kMagic = "TALLYJ1\n";
constexpr std::string_view kSuffix = ".journal";
// partition (4) + offset (8) + key length (4): the fixed part of a record's body.
constexpr size_t kFixedBody = 16;
// body length (4) + checksum (8) before every body.
constexpr size_t kFrame = 12;

void PutFixed32(uint32_t v, std::string* out) {
  char b[4];
  std::memcpy(b, &v, 4);
  out->append(b, 4);
}
void PutFixed64(uint64_t v, std::string* out) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}
uint32_t Fixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Fixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// A stable 64-bit checksum (the same in every process and build): multiply-xor over 8-byte
// words. It only has to tell a whole record from a torn or overwritten one.
uint64_t Checksum(std::string_view s) {
  uint64_t h = 0x6a09e667f3bcc909ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    h = (h ^ Fixed64(s.data() + i)) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 32);
}

std::string Header(std::string_view cluster_id, std::string_view topic) {
  std::string h(kMagic);
  PutFixed32(static_cast<uint32_t>(cluster_id.size()), &h);
  h.append(cluster_id);
  PutFixed32(static_cast<uint32_t>(topic.size()), &h);
  h.append(topic);
  return h;
}

Error IoError(const std::string& what, int err) {
  return Error{ErrorCode::kUnavailable, what + ": " + std::strerror(err), {}};
}

// Writes all of `data` to `fd` (write() may write less than asked).
bool WriteAll(int fd, std::string_view data, int* err) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& dir, std::string cluster_id,
                                               std::string topic) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Fail(ErrorCode::kUnavailable, "cannot create journal " + dir + ": " + ec.message());
  std::unique_ptr<Journal> j(new Journal(dir, std::move(cluster_id), std::move(topic)));
  auto segments = j->ListSegments();
  if (!segments) return std::unexpected(segments.error());
  for (const auto& [sequence, size] : *segments) {
    j->next_sequence_ = std::max(j->next_sequence_, sequence + 1);
    j->bytes_ += size;
  }
  return j;
}

Journal::~Journal() { CloseSegment(); }

std::string Journal::SegmentPath(uint64_t sequence) const {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(sequence));
  return (std::filesystem::path(dir_) / (std::string(name) + std::string(kSuffix))).string();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> Journal::ListSegments() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 + kSuffix.size() || !name.ends_with(kSuffix)) continue;
    uint64_t sequence = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + 20, sequence);
    if (err != std::errc() || end != name.data() + 20) continue;
    std::error_code size_ec;
    const uint64_t size = entry.file_size(size_ec);
    out.emplace_back(sequence, size_ec ? 0 : size);
  }
  if (ec) return Fail(ErrorCode::kUnavailable, "cannot list journal " + dir_ + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<JournalContents> Journal::ReadAll() const {
  JournalContents out;
  auto segments = ListSegments();
  if (!segments) return std::unexpected(segments.error());
  const std::string header = Header(cluster_id_, topic_);
  for (const auto& [sequence, size] : *segments) {
    const std::string path = SegmentPath(sequence);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::unexpected(IoError("cannot open " + path, errno));
    std::string data;
    char chunk[1 << 16];
    while (true) {
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return std::unexpected(IoError("cannot read " + path, err));
      }
      if (n == 0) break;
      data.append(chunk, static_cast<size_t>(n));
    }
    ::close(fd);
    if (data.size() < kMagic.size() || !data.starts_with(kMagic)) {
      out.torn_bytes += data.size();  // cut short before its header was whole
      continue;
    }
    if (!data.starts_with(header)) {
      ++out.foreign_segments;
      continue;
    }
    out.buffers.push_back(std::move(data));
    const std::string& buf = out.buffers.back();
    size_t pos = header.size();
    while (pos < buf.size()) {
      if (buf.size() - pos < kFrame) break;
      const uint32_t body_size = Fixed32(buf.data() + pos);
      const uint64_t sum = Fixed64(buf.data() + pos + 4);
      if (body_size < kFixedBody || buf.size() - pos - kFrame < body_size) break;
      const std::string_view body(buf.data() + pos + kFrame, body_size);
      if (Checksum(body) != sum) break;
      const uint32_t key_size = Fixed32(body.data() + 12);
      if (key_size > body_size - kFixedBody) break;
      JournalRecord r;
      r.partition = static_cast<int32_t>(Fixed32(body.data()));
      r.offset = static_cast<int64_t>(Fixed64(body.data() + 4));
      r.key = body.substr(kFixedBody, key_size);
      r.payload = body.substr(kFixedBody + key_size);
      out.records.push_back(r);
      pos += kFrame + body_size;
    }
    out.torn_bytes += buf.size() - pos;
  }
  return out;
}

Status Journal::Append(std::span<const JournalRecord> records) {
  if (records.empty()) return Ok();
  buffer_.clear();
  if (fd_ < 0) {
    const uint64_t sequence = next_sequence_++;
    const std::string path = SegmentPath(sequence);
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return std::unexpected(IoError("cannot create " + path, errno));
    current_ = sequence;
    buffer_ = Header(cluster_id_, topic_);
  }
  for (const JournalRecord& r : records) {
    const size_t body_size = kFixedBody + r.key.size() + r.payload.size();
    const size_t frame_at = buffer_.size();
    buffer_.resize(frame_at + kFrame);  // length and checksum, filled in below
    PutFixed32(static_cast<uint32_t>(r.partition), &buffer_);
    PutFixed64(static_cast<uint64_t>(r.offset), &buffer_);
    PutFixed32(static_cast<uint32_t>(r.key.size()), &buffer_);
    buffer_.append(r.key);
    buffer_.append(r.payload);
    const uint32_t size32 = static_cast<uint32_t>(body_size);
    const uint64_t sum = Checksum(std::string_view(buffer_).substr(frame_at + kFrame));
    std::memcpy(buffer_.data() + frame_at, &size32, 4);
    std::memcpy(buffer_.data() + frame_at + 4, &sum, 8);
  }
  int err = 0;
  if (!WriteAll(fd_, buffer_, &err)) {
    CloseSegment();  // a torn record ends this segment; the next append starts another
    return std::unexpected(IoError("cannot append to the journal in " + dir_, err));
  }
  bytes_ += buffer_.size();
  return Ok();
}

void Journal::CloseSegment() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

uint64_t Journal::Roll() {
  if (fd_ < 0) return 0;
  CloseSegment();
  return current_;
}

Status Journal::DropThrough(uint64_t segment) {
  if (segment == 0) return Ok();
  if (fd_ >= 0 && current_ <= segment) CloseSegment();
  auto segments = ListSegments();
  if (!segments) return std::unexpected(segments.error());
  for (const auto& [sequence, size] : *segments) {
    if (sequence > segment) break;
    if (::unlink(SegmentPath(sequence).c_str()) != 0 && errno != ENOENT) {
      return std::unexpected(IoError("cannot delete " + SegmentPath(sequence), errno));
    }
    bytes_ -= std::min(bytes_, size);
  }
  return Ok();
}

Status Journal::Clear() {
  CloseSegment();
  if (Status s = DropThrough(UINT64_MAX); !s) return s;
  bytes_ = 0;
  return Ok();
}

}  // namespace tally::ingest
