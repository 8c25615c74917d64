#pragma once
// Streams the lines of an NDJSON file that may be plain, gzip- or zstd-compressed (told apart by
// their magic bytes, not their names), for backfills.
//
//   auto reader = tally::replay::LineReader::Open("events-2026-01.ndjson.zst");
//   if (!reader) die(reader.error().message);         // names the file
//   std::string_view line;
//   while ((*reader)->Next(&line)) handle(line);        // without the trailing "\n" / "\r\n"
//   if (auto s = (*reader)->status(); !s) die(s.error().message);   // corrupt or truncated
//
// Memory stays bounded by the longest line plus the buffers (about 2 MiB). Not thread-safe.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tally::replay {

enum class Compression : uint8_t { kNone, kGzip, kZstd };

class LineReader {
 public:
  // Opens `path` ("-" = standard input). kNotFound / kUnavailable when it cannot be opened.
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line (empty lines included), valid until the next call; false at the end of the
  // input or on an error (then status() says which).
  bool Next(std::string_view* line);
  Status status() const { return status_; }

  Compression compression() const { return compression_; }
  // Bytes read from the file so far, and its size (0 when unknown, e.g. a pipe): for progress.
  uint64_t file_bytes_read() const { return file_bytes_read_; }
  uint64_t file_size() const { return file_size_; }
  // Decompressed bytes handed out so far (lines and their newlines).
  uint64_t bytes_out() const { return bytes_out_; }
  const std::string& path() const { return path_; }

 private:
  LineReader() = default;
  // Appends more decompressed bytes to buf_; false at the end of input or on error.
  bool Fill();
  bool ReadRaw();

  std::string path_;
  FILE* file_ = nullptr;
  bool owns_file_ = false;
  Compression compression_ = Compression::kNone;
  struct Codec;
  std::unique_ptr<Codec> codec_;
  std::string raw_;  // compressed input not yet consumed: raw_[raw_pos_, raw_.size())
  size_t raw_pos_ = 0;
  bool raw_eof_ = false;
  std::string buf_;  // decompressed bytes: buf_[pos_, buf_.size())
  size_t pos_ = 0;
  bool done_ = false;
  bool zstd_pending_ = false;  // a zstd frame is not complete yet
  bool gzip_pending_ = false;  // a gzip member is not complete yet
  Status status_ = Ok();
  uint64_t file_bytes_read_ = 0, file_size_ = 0, bytes_out_ = 0;
};

}  // namespace tally::replay
