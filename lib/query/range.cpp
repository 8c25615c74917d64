#include "query/range.h"

namespace tally::query {

std::vector<BucketRef> DecomposeRange(DayNumber from, DayNumber to) {
  std::vector<BucketRef> out;
  DayNumber d = from;
  while (d <= to) {
    int32_t month = BucketOf(d, Granularity::kMonth);
    if (BucketFirstDay(month, Granularity::kMonth) == d &&
        BucketLastDay(month, Granularity::kMonth) <= to) {
      out.push_back({Granularity::kMonth, month});
      d = BucketLastDay(month, Granularity::kMonth) + 1;
      continue;
    }
    int32_t week = BucketOf(d, Granularity::kWeek);
    DayNumber next_month = BucketFirstDay(month + 1, Granularity::kMonth);
    // A week that would swallow the first day of a month lying wholly inside the range would
    // turn one month read into several week and day reads: stop at the month instead.
    bool blocks_month = next_month <= d + 6 && BucketLastDay(month + 1, Granularity::kMonth) <= to;
    if (!blocks_month && BucketFirstDay(week, Granularity::kWeek) == d &&
        BucketLastDay(week, Granularity::kWeek) <= to) {
      out.push_back({Granularity::kWeek, week});
      d += 7;
      continue;
    }
    out.push_back({Granularity::kDay, d});
    ++d;
  }
  return out;
}

}  // namespace tally::query
