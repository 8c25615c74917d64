#include "replay/line_reader.h"

#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

namespace tally::replay {
namespace {
constexpr size_t kChunk = 1 << 20;
}  // namespace

struct LineReader::Codec {
  z_stream z{};
  bool z_init = false;
  ZSTD_DStream* zstd = nullptr;
  ~Codec() {
    if (z_init) inflateEnd(&z);
    if (zstd) ZSTD_freeDStream(zstd);
  }
};

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  std::unique_ptr<LineReader> r(new LineReader());
  r->path_ = path;
  if (path == "-") {
    r->file_ = stdin;
  } else {
    r->file_ = std::fopen(path.c_str(), "rb");
    if (!r->file_) {
      return Fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                  path + ": " + std::strerror(errno));
    }
    r->owns_file_ = true;
    struct stat st;
    if (::fstat(fileno(r->file_), &st) == 0 && S_ISREG(st.st_mode)) r->file_size_ = st.st_size;
  }
  r->codec_ = std::make_unique<Codec>();
  r->ReadRaw();
  auto magic = [&](std::string_view m) {
    return r->raw_.size() >= m.size() && std::string_view(r->raw_).substr(0, m.size()) == m;
  };
  if (magic("\x1f\x8b")) {
    r->compression_ = Compression::kGzip;
    // 15 + 32: zlib or gzip headers, detected automatically.
    if (inflateInit2(&r->codec_->z, 15 + 32) != Z_OK) {
      return Fail(ErrorCode::kInternal, path + ": cannot start the gzip decoder");
    }
    r->codec_->z_init = true;
  } else if (magic(std::string_view("\x28\xb5\x2f\xfd", 4))) {
    r->compression_ = Compression::kZstd;
    r->codec_->zstd = ZSTD_createDStream();
    if (!r->codec_->zstd || ZSTD_isError(ZSTD_initDStream(r->codec_->zstd))) {
      return Fail(ErrorCode::kInternal, path + ": cannot start the zstd decoder");
    }
  }
  if (!r->status_) return std::unexpected(r->status_.error());
  return r;
}

LineReader::~LineReader() {
  if (owns_file_ && file_) std::fclose(file_);
}

bool LineReader::ReadRaw() {
  if (raw_eof_) return false;
  if (raw_pos_ > 0) {
    raw_.erase(0, raw_pos_);
    raw_pos_ = 0;
  }
  const size_t old = raw_.size();
  raw_.resize(old + kChunk);
  size_t n = std::fread(raw_.data() + old, 1, kChunk, file_);
  raw_.resize(old + n);
  file_bytes_read_ += n;
  if (n < kChunk) {
    if (std::ferror(file_)) {
      status_ = Fail(ErrorCode::kUnavailable, path_ + ": read error: " + std::strerror(errno));
    }
    raw_eof_ = true;
  }
  return n > 0;
}

bool LineReader::Fill() {
  if (!status_) return false;
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  for (;;) {
    if (raw_pos_ == raw_.size() && !ReadRaw()) {
      if (!status_) return false;
      if (compression_ == Compression::kZstd && codec_->zstd && zstd_pending_) {
        status_ = Fail(ErrorCode::kDataLoss, path_ + ": truncated zstd stream");
        return false;
      }
      if (compression_ == Compression::kGzip && gzip_pending_) {
        status_ = Fail(ErrorCode::kDataLoss, path_ + ": truncated gzip stream");
        return false;
      }
      return false;
    }
    const char* in = raw_.data() + raw_pos_;
    const size_t in_size = raw_.size() - raw_pos_;
    switch (compression_) {
      case Compression::kNone:
        buf_.append(in, in_size);
        raw_pos_ = raw_.size();
        return true;
      case Compression::kZstd: {
        const size_t old = buf_.size();
        buf_.resize(old + kChunk);
        ZSTD_inBuffer ib{in, in_size, 0};
        ZSTD_outBuffer ob{buf_.data() + old, kChunk, 0};
        size_t rc = ZSTD_decompressStream(codec_->zstd, &ob, &ib);
        if (ZSTD_isError(rc)) {
          status_ =
              Fail(ErrorCode::kDataLoss, path_ + ": corrupt zstd data: " + ZSTD_getErrorName(rc));
          return false;
        }
        zstd_pending_ = rc != 0;
        raw_pos_ += ib.pos;
        buf_.resize(old + ob.pos);
        if (ob.pos > 0) return true;
        break;
      }
      case Compression::kGzip: {
        z_stream& z = codec_->z;
        const size_t old = buf_.size();
        buf_.resize(old + kChunk);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in));
        z.avail_in = static_cast<uInt>(in_size);
        z.next_out = reinterpret_cast<Bytef*>(buf_.data() + old);
        z.avail_out = static_cast<uInt>(kChunk);
        int rc = inflate(&z, Z_NO_FLUSH);
        const size_t produced = kChunk - z.avail_out;
        raw_pos_ += in_size - z.avail_in;
        buf_.resize(old + produced);
        if (rc == Z_STREAM_END) {
          // Concatenated gzip members (e.g. `cat a.gz b.gz`) continue with a fresh header.
          inflateReset(&z);
          gzip_pending_ = false;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
          status_ = Fail(ErrorCode::kDataLoss,
                         path_ + ": corrupt gzip data: " + (z.msg ? z.msg : std::to_string(rc)));
          return false;
        } else {
          gzip_pending_ = true;
        }
        if (produced > 0) return true;
        break;
      }
    }
  }
}

bool LineReader::Next(std::string_view* line) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > pos_ && buf_[end - 1] == '\r') --end;
      *line = std::string_view(buf_).substr(pos_, end - pos_);
      bytes_out_ += nl + 1 - pos_;
      pos_ = nl + 1;
      return true;
    }
    if (done_) return false;
    if (!Fill()) {
      done_ = true;
      if (!status_) return false;
      if (pos_ < buf_.size()) {  // a last line without a newline
        size_t end = buf_.size();
        if (buf_[end - 1] == '\r') --end;
        *line = std::string_view(buf_).substr(pos_, end - pos_);
        bytes_out_ += buf_.size() - pos_;
        pos_ = buf_.size();
        return true;
      }
      return false;
    }
  }
}

}  // namespace tally::replay
