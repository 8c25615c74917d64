#pragma once
// Validation of an optional inclusive date range given as two query parameters ("date_from" /
// "date_to", "from" / "to"), shared by the endpoints that take one. Internal to tally::http.

#include <optional>
#include <string>
#include <utility>

#include "common/calendar.h"
#include "http/error_mapping.h"

namespace tally::http::internal {

// `from_text` / `to_text` are the raw values (null = absent). Both or neither must be given,
// each YYYY-MM-DD, from <= to, and at most `max_days` days. Appends Laravel-style messages
// naming `from_name` / `to_name` (underscores read as spaces) to *errors. Returns the range
// when both are present and valid, nullopt otherwise (absent or invalid).
inline std::optional<std::pair<DayNumber, DayNumber>> ParseDateRangeParams(
    const char* from_name, const std::string* from_text, const char* to_name,
    const std::string* to_text, int max_days, FieldErrors* errors) {
  auto label = [](std::string name) {
    for (char& c : name) c = c == '_' ? ' ' : c;
    return name;
  };
  const std::string from_label = label(from_name), to_label = label(to_name);
  auto fail = [errors](const char* field, std::string message) {
    errors->push_back(FieldError{field, std::move(message)});
  };
  std::optional<DayNumber> from, to;
  bool dates_ok = true;
  if (from_text) {
    if (auto d = ParseDay(*from_text)) {
      from = *d;
    } else {
      fail(from_name, "The " + from_label + " field must match the format Y-m-d.");
      dates_ok = false;
    }
  }
  if (to_text) {
    if (auto d = ParseDay(*to_text)) {
      to = *d;
    } else {
      fail(to_name, "The " + to_label + " field must match the format Y-m-d.");
      dates_ok = false;
    }
  }
  if (to_text && !from_text) {
    fail(from_name, "The " + from_label + " field is required when " + to_label + " is present.");
  } else if (from_text && !to_text) {
    fail(to_name, "The " + to_label + " field is required when " + from_label + " is present.");
  } else if (dates_ok && from && to) {
    if (*from > *to) {
      fail(to_name,
           "The " + to_label + " field must be a date after or equal to " + from_label + ".");
    } else if (*to - *from + 1 > max_days) {
      fail(from_name,
           "The date range must not be longer than " + std::to_string(max_days) + " days.");
    } else {
      return std::make_pair(*from, *to);
    }
  }
  return std::nullopt;
}

}  // namespace tally::http::internal
