#pragma once
// The one clock of tally: where "today" comes from.
//
//   tally::Clock clock;                        // the system clock
//   tally::Clock fixed = tally::Clock::Fixed(ms);  // tests and demos: a frozen instant
//   tally::DayNumber today = clock.Today();
//
// Thread-safe (immutable after construction).

#include <cstdint>
#include <optional>

#include "common/calendar.h"

namespace tally {

class Clock {
 public:
  Clock() = default;
  static Clock Fixed(int64_t now_ms) {
    Clock c;
    c.fixed_ms_ = now_ms;
    return c;
  }
  // Epoch milliseconds now: the fixed instant if one was set, else the system clock.
  int64_t NowMillis() const;
  // Today's UTC day.
  DayNumber Today() const { return DayOfMillis(NowMillis()); }
  bool is_fixed() const { return fixed_ms_.has_value(); }

 private:
  std::optional<int64_t> fixed_ms_;
};

}  // namespace tally
