#include "replay/progress.h"

#include <unistd.h>

#include <algorithm>

namespace tally::replay {

using Clock = std::chrono::steady_clock;

Progress::Progress(FILE* out, uint64_t total_bytes, int interactive)
    : out_(out),
      total_bytes_(total_bytes),
      interactive_(interactive < 0 ? ::isatty(fileno(out)) != 0 : interactive != 0),
      start_(Clock::now()),
      last_(start_) {}

std::string Progress::Thousands(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Progress::Line(uint64_t events, uint64_t done_bytes, int64_t items_left,
                           bool final) const {
  const double secs = std::max(1e-3, std::chrono::duration<double>(Clock::now() - start_).count());
  const double rate = static_cast<double>(events) / secs;
  char buf[256];
  std::string line;
  double fraction = -1;
  if (total_bytes_ > 0) fraction = std::min(1.0, static_cast<double>(done_bytes) / total_bytes_);
  if (interactive_ && fraction >= 0) {
    constexpr int kWidth = 24;
    int filled = static_cast<int>(fraction * kWidth);
    line = "[" + std::string(filled, '=') + (filled < kWidth ? ">" : "") +
           std::string(std::max(0, kWidth - filled - 1), ' ') + "] ";
  }
  if (fraction >= 0) {
    std::snprintf(buf, sizeof buf, "%3.0f%%  ", fraction * 100);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, "%s events  %s ev/s  %.1f MB  %.1f MB/s",
                Thousands(events).c_str(), Thousands(static_cast<uint64_t>(rate)).c_str(),
                done_bytes / 1e6, done_bytes / 1e6 / secs);
  line += buf;
  double eta = -1;
  if (!final && fraction > 0 && fraction < 1) eta = secs * (1 - fraction) / fraction;
  if (!final && items_left >= 0 && rate > 0) eta = static_cast<double>(items_left) / rate;
  if (eta >= 0) {
    int s = static_cast<int>(eta);
    std::snprintf(buf, sizeof buf, "  ETA %d:%02d", s / 60, s % 60);
    line += buf;
  }
  if (final) {
    std::snprintf(buf, sizeof buf, "  in %.1f s", secs);
    line += buf;
  }
  return line;
}

void Progress::Update(uint64_t events, uint64_t done_bytes, int64_t items_left) {
  const auto now = Clock::now();
  const auto every = interactive_ ? std::chrono::milliseconds(250) : std::chrono::seconds(5);
  if (now - last_ < every) return;
  last_ = now;
  std::string line = Line(events, done_bytes, items_left, false);
  if (interactive_) {
    std::fprintf(out_, "\r%s\033[K", line.c_str());
  } else {
    std::fprintf(out_, "replay: %s\n", line.c_str());
  }
  std::fflush(out_);
}

void Progress::Done(uint64_t events, uint64_t done_bytes) {
  std::string line = Line(events, done_bytes, -1, true);
  if (interactive_) {
    std::fprintf(out_, "\r%s\033[K\n", line.c_str());
  } else {
    std::fprintf(out_, "replay: %s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace tally::replay
