#include "common/calendar.h"

#include <cstdio>

namespace tally {
namespace {

// Howard Hinnant's civil-from-days algorithms (public domain).
constexpr int64_t FloorDiv(int64_t a, int64_t b) { return (a >= 0 ? a : a - b + 1) / b; }

bool IsLeap(int32_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

uint32_t DaysInMonth(int32_t y, uint32_t m) {
  static constexpr uint8_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Parses exactly `n` ASCII digits at `p`; false if any is not a digit.
bool Digits(const char* p, int n, int32_t* out) {
  int32_t v = 0;
  for (int i = 0; i < n; ++i) {
    char c = p[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// ISO week-year and week number of the week with index `week`.
void IsoWeekOf(int32_t week, int32_t* iso_year, int32_t* iso_week) {
  DayNumber thursday = BucketFirstDay(week, Granularity::kWeek) + 3;
  CivilDate c = CivilFromDays(thursday);
  DayNumber jan1 = DaysFromCivil(c.year, 1, 1);
  *iso_year = c.year;
  *iso_week = (thursday - jan1) / 7 + 1;
}

}  // namespace

DayNumber DaysFromCivil(int32_t y, uint32_t m, uint32_t d) {
  y -= m <= 2;
  const int32_t era = static_cast<int32_t>(FloorDiv(y, 400));
  const uint32_t yoe = static_cast<uint32_t>(y - era * 400);
  const uint32_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const uint32_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int32_t>(doe) - 719468;
}

CivilDate CivilFromDays(DayNumber z64) {
  int64_t z = static_cast<int64_t>(z64) + 719468;
  const int64_t era = FloorDiv(z, 146097);
  const uint32_t doe = static_cast<uint32_t>(z - era * 146097);
  const uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const uint32_t mp = (5 * doy + 2) / 153;
  const uint32_t d = doy - (153 * mp + 2) / 5 + 1;
  const uint32_t m = mp < 10 ? mp + 3 : mp - 9;
  return CivilDate{static_cast<int32_t>(y + (m <= 2)), m, d};
}

DayNumber DayOfMillis(int64_t time_ms) {
  return static_cast<DayNumber>(FloorDiv(time_ms, 86'400'000));
}

DayNumber BucketDay(int64_t time_ms, std::string_view /*workspace_id*/) {
  return DayOfMillis(time_ms);
}

int32_t BucketOf(DayNumber day, Granularity g) {
  switch (g) {
    case Granularity::kDay:
      return day;
    case Granularity::kWeek:
      // 1970-01-01 was a Thursday; the Monday before it is day -3.
      return static_cast<int32_t>(FloorDiv(static_cast<int64_t>(day) + 3, 7));
    case Granularity::kMonth: {
      CivilDate c = CivilFromDays(day);
      return c.year * 12 + static_cast<int32_t>(c.month) - 1;
    }
  }
  return day;
}

DayNumber BucketFirstDay(int32_t bucket, Granularity g) {
  switch (g) {
    case Granularity::kDay:
      return bucket;
    case Granularity::kWeek:
      return bucket * 7 - 3;
    case Granularity::kMonth: {
      int32_t y = static_cast<int32_t>(FloorDiv(bucket, 12));
      return DaysFromCivil(y, static_cast<uint32_t>(bucket - y * 12) + 1, 1);
    }
  }
  return bucket;
}

DayNumber BucketLastDay(int32_t bucket, Granularity g) {
  switch (g) {
    case Granularity::kDay:
      return bucket;
    case Granularity::kWeek:
      return bucket * 7 + 3;
    case Granularity::kMonth:
      return BucketFirstDay(bucket + 1, g) - 1;
  }
  return bucket;
}

std::string FormatDay(DayNumber day) {
  CivilDate c = CivilFromDays(day);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", c.year, c.month, c.day);
  return buf;
}

std::string FormatIsoWeek(int32_t week) {
  int32_t y, w;
  IsoWeekOf(week, &y, &w);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d", y, w);
  return buf;
}

std::string FormatMonth(int32_t month) {
  int32_t y = static_cast<int32_t>(FloorDiv(month, 12));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d", y, month - y * 12 + 1);
  return buf;
}

std::string FormatBucket(int32_t bucket, Granularity g) {
  switch (g) {
    case Granularity::kDay:
      return FormatDay(bucket);
    case Granularity::kWeek:
      return FormatIsoWeek(bucket);
    case Granularity::kMonth:
      return FormatMonth(bucket);
  }
  return {};
}

Result<DayNumber> ParseDay(std::string_view t) {
  int32_t y, m, d;
  if (t.size() != 10 || t[4] != '-' || t[7] != '-' || !Digits(t.data(), 4, &y) ||
      !Digits(t.data() + 5, 2, &m) || !Digits(t.data() + 8, 2, &d) || m < 1 || m > 12 || d < 1 ||
      static_cast<uint32_t>(d) > DaysInMonth(y, static_cast<uint32_t>(m))) {
    return Fail(ErrorCode::kInvalidArgument, "must be a date in YYYY-MM-DD format");
  }
  return DaysFromCivil(y, static_cast<uint32_t>(m), static_cast<uint32_t>(d));
}

Result<int64_t> ParseRfc3339Millis(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto bad = [](const char* why) { return Fail(ErrorCode::kInvalidArgument, why); };
  if (t.size() < 20) return bad("time is not RFC 3339 (too short)");
  int32_t y, mo, d, h, mi, s;
  const char* p = t.data();
  if (!Digits(p, 4, &y) || p[4] != '-' || !Digits(p + 5, 2, &mo) || p[7] != '-' ||
      !Digits(p + 8, 2, &d)) {
    return bad("time is not RFC 3339 (date part must be YYYY-MM-DD)");
  }
  if (p[10] != 'T' && p[10] != 't' && p[10] != ' ') {
    return bad("time is not RFC 3339 (missing 'T' between date and time)");
  }
  if (!Digits(p + 11, 2, &h) || p[13] != ':' || !Digits(p + 14, 2, &mi) || p[16] != ':' ||
      !Digits(p + 17, 2, &s)) {
    return bad("time is not RFC 3339 (time part must be HH:MM:SS)");
  }
  if (mo < 1 || mo > 12 || d < 1 || static_cast<uint32_t>(d) > DaysInMonth(y, mo) || h > 23 ||
      mi > 59 || s > 60) {
    return bad("time is not a valid calendar date-time");
  }
  if (s == 60) s = 59;  // leap second: clamp into the same minute
  size_t i = 19;
  int64_t millis = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    size_t start = i;
    int n = 0;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (n < 3) {
        millis = millis * 10 + (t[i] - '0');
        ++n;
      }
      ++i;
    }
    if (i == start) return bad("time is not RFC 3339 (empty fraction)");
    for (; n < 3; ++n) millis *= 10;
  }
  if (i >= t.size()) return bad("time is not RFC 3339 (missing time zone offset)");
  int64_t offset_min = 0;
  if (t[i] == 'Z' || t[i] == 'z') {
    ++i;
  } else if (t[i] == '+' || t[i] == '-') {
    int32_t oh, om;
    if (t.size() - i != 6 || !Digits(p + i + 1, 2, &oh) || p[i + 3] != ':' ||
        !Digits(p + i + 4, 2, &om) || oh > 23 || om > 59) {
      return bad("time is not RFC 3339 (offset must be Z or +HH:MM)");
    }
    offset_min = (oh * 60 + om) * (t[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return bad("time is not RFC 3339 (offset must be Z or +HH:MM)");
  }
  if (i != t.size()) return bad("time is not RFC 3339 (trailing characters)");
  int64_t days = DaysFromCivil(y, mo, d);
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
  return secs * 1000 + millis;
}

std::string FormatRfc3339Millis(int64_t time_ms) {
  DayNumber day = DayOfMillis(time_ms);
  int64_t ms_of_day = time_ms - static_cast<int64_t>(day) * 86'400'000;
  CivilDate c = CivilFromDays(day);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day,
                static_cast<int>(ms_of_day / 3'600'000), static_cast<int>(ms_of_day / 60'000 % 60),
                static_cast<int>(ms_of_day / 1000 % 60), static_cast<int>(ms_of_day % 1000));
  return buf;
}

std::string FormatRfc3339Seconds(int64_t time_ms) {
  std::string s = FormatRfc3339Millis(time_ms);
  s.erase(19, 4);  // drop ".mmm"
  return s;
}

}  // namespace tally
