#include "common/clock.h"

#include <chrono>

namespace tally {

int64_t Clock::NowMillis() const {
  if (fixed_ms_) return *fixed_ms_;
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tally
