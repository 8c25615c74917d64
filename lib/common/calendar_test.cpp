#include "common/calendar.h"

#include <gtest/gtest.h>

namespace tally {
namespace {

TEST(CalendarTest, CivilRoundTrip) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
  for (DayNumber d = -800; d < 30000; d += 7) {
    CivilDate c = CivilFromDays(d);
    EXPECT_EQ(DaysFromCivil(c.year, c.month, c.day), d);
  }
}

TEST(CalendarTest, IsoWeeks) {
  // 2026-01-01 is a Thursday: ISO week 2026-01 runs Mon 2025-12-29 .. Sun 2026-01-04.
  DayNumber d = *ParseDay("2026-01-01");
  EXPECT_EQ(FormatIsoWeek(WeekOfDay(d)), "2026-01");
  EXPECT_EQ(FormatDay(BucketFirstDay(WeekOfDay(d), Granularity::kWeek)), "2025-12-29");
  EXPECT_EQ(FormatDay(BucketLastDay(WeekOfDay(d), Granularity::kWeek)), "2026-01-04");
  // 2027-01-01 is a Friday: it belongs to ISO week 2026-53.
  EXPECT_EQ(FormatIsoWeek(WeekOfDay(*ParseDay("2027-01-01"))), "2026-53");
  // 2024-12-30 (Monday) starts ISO week 2025-01.
  EXPECT_EQ(FormatIsoWeek(WeekOfDay(*ParseDay("2024-12-30"))), "2025-01");
  EXPECT_EQ(FormatIsoWeek(WeekOfDay(*ParseDay("2026-01-15"))), "2026-03");
}

TEST(CalendarTest, Months) {
  DayNumber d = *ParseDay("2024-02-29");
  int32_t m = MonthOfDay(d);
  EXPECT_EQ(FormatMonth(m), "2024-02");
  EXPECT_EQ(FormatDay(BucketFirstDay(m, Granularity::kMonth)), "2024-02-01");
  EXPECT_EQ(FormatDay(BucketLastDay(m, Granularity::kMonth)), "2024-02-29");
  EXPECT_EQ(FormatDay(BucketLastDay(MonthOfDay(*ParseDay("2025-12-05")), Granularity::kMonth)),
            "2025-12-31");
}

TEST(CalendarTest, ParseDayRejects) {
  EXPECT_FALSE(ParseDay("2026-02-29").has_value());
  EXPECT_FALSE(ParseDay("2026-13-01").has_value());
  EXPECT_FALSE(ParseDay("2026-1-01").has_value());
  EXPECT_FALSE(ParseDay("").has_value());
  EXPECT_FALSE(ParseDay("2026-01-01x").has_value());
}

TEST(CalendarTest, Rfc3339) {
  EXPECT_EQ(*ParseRfc3339Millis("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339Millis("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(*ParseRfc3339Millis("1970-01-01T02:00:00.123456+02:00"), 123);
  EXPECT_EQ(*ParseRfc3339Millis("1969-12-31T23:00:00-01:00"), 0);
  EXPECT_EQ(FormatRfc3339Millis(*ParseRfc3339Millis("2026-01-15T10:23:45.123Z")),
            "2026-01-15T10:23:45.123Z");
  EXPECT_EQ(DayOfMillis(-1), -1);
  for (const char* bad : {"2026-01-15", "2026-01-15T10:23:45", "2026-01-15T10:23:45+0200",
                          "2026-02-30T00:00:00Z", "2026-01-15T24:00:00Z", "2026-01-15T10:23:45.Z",
                          "2026-01-15T10:23:45Zjunk", "not a time at all!!"}) {
    EXPECT_FALSE(ParseRfc3339Millis(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace tally
