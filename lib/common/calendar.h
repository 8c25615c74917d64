#pragma once
// UTC calendar arithmetic and the one bucketing function of tally.
//
//   tally::DayNumber d = tally::BucketDay(event.time_ms, event.workspace_id);
//   int32_t week = tally::WeekOfDay(d);                    // ISO week (Monday start)
//   std::string label = tally::FormatIsoWeek(week);        // "2026-03"
//   auto day = tally::ParseDay("2026-01-15");              // Result<DayNumber>
//
// A DayNumber counts UTC days since 1970-01-01 (day 0). A week index counts Monday-started
// weeks; a month index is year * 12 + (month - 1). All functions are pure and thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tally {

using DayNumber = int32_t;

enum class Granularity : uint8_t { kDay = 0, kWeek = 1, kMonth = 2 };

struct CivilDate {
  int32_t year;
  uint32_t month;  // 1..12
  uint32_t day;    // 1..31
};

// Days since 1970-01-01 of a proleptic Gregorian date. No validation.
DayNumber DaysFromCivil(int32_t year, uint32_t month, uint32_t day);
CivilDate CivilFromDays(DayNumber day);

// The single place where an event's time becomes a bucket day. Today UTC for every
// workspace; the workspace parameter exists so a per-workspace time zone can be added later
// without touching the storage layout or the callers.
DayNumber BucketDay(int64_t time_ms, std::string_view workspace_id);

// UTC day of an epoch-milliseconds instant (floor division; works before 1970).
DayNumber DayOfMillis(int64_t time_ms);

// Bucket index of `day` at `granularity`: the day itself, its ISO week index, or its month index.
int32_t BucketOf(DayNumber day, Granularity granularity);
// First and last day (inclusive) of a bucket.
DayNumber BucketFirstDay(int32_t bucket, Granularity granularity);
DayNumber BucketLastDay(int32_t bucket, Granularity granularity);

inline int32_t WeekOfDay(DayNumber day) { return BucketOf(day, Granularity::kWeek); }
inline int32_t MonthOfDay(DayNumber day) { return BucketOf(day, Granularity::kMonth); }

// Labels: "YYYY-MM-DD", "YYYY-WW" (ISO week-year and week number), "YYYY-MM".
std::string FormatDay(DayNumber day);
std::string FormatIsoWeek(int32_t week);
std::string FormatMonth(int32_t month);
std::string FormatBucket(int32_t bucket, Granularity granularity);

// Strict "YYYY-MM-DD" (a real calendar date). kInvalidArgument otherwise.
Result<DayNumber> ParseDay(std::string_view text);

// RFC 3339 date-time ("2026-01-15T10:23:45.123Z", "...+02:00", lowercase t/z accepted, any
// number of fraction digits, truncated to milliseconds) to UTC epoch milliseconds.
// kInvalidArgument with a reason otherwise. Does not allocate on success.
Result<int64_t> ParseRfc3339Millis(std::string_view text);

// "2026-01-15T10:23:45.123Z" for an epoch-milliseconds instant.
std::string FormatRfc3339Millis(int64_t time_ms);
// "2026-01-15T10:23:45Z" (whole seconds).
std::string FormatRfc3339Seconds(int64_t time_ms);

}  // namespace tally
