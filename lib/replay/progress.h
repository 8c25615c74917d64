#pragma once
// Progress reporting for long CLI work: a redrawn one-line bar on a terminal, plain periodic
// lines otherwise (logs, CI), and a final summary.
//
//   tally::replay::Progress progress(stderr, /*total_bytes=*/file_size);
//   for (...) { ...; progress.Update(events, bytes); }     // cheap: redraws at most 4x/s
//   progress.Done(events, bytes);
//
// Terminal: "[=====>    ]  52%  1,204,000 events  310,000 ev/s  45.1 MB  ETA 0:04".
// Not a terminal: the same figures as one line every 5 s. Not thread-safe.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tally::replay {

class Progress {
 public:
  // `total_bytes` 0 = unknown (no percentage or ETA). `interactive` defaults to isatty(out).
  Progress(FILE* out, uint64_t total_bytes, int interactive = -1);
  void set_total_bytes(uint64_t total) { total_bytes_ = total; }
  // `done_bytes` counts toward total_bytes; `eta_items_left` (if >= 0) gives an ETA by items.
  void Update(uint64_t events, uint64_t done_bytes, int64_t items_left = -1);
  // Final line (always printed), then a newline on a terminal.
  void Done(uint64_t events, uint64_t done_bytes);

  // "1,234,567"
  static std::string Thousands(uint64_t v);

 private:
  std::string Line(uint64_t events, uint64_t done_bytes, int64_t items_left, bool final) const;

  FILE* out_;
  uint64_t total_bytes_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace tally::replay
