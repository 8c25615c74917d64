#pragma once
// The parser's rejections: every reason an event is refused for, its category (the metric label
// of ReasonCategory) and its stable wording, and the Error built for each. Private to
// tally_event (event_parser.cpp, internal/json_fields.h).

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "common/result.h"
#include "event/event_parser.h"

namespace tally::event::internal {

enum class Category : uint8_t {
  kInvalidJson,
  kTooLarge,
  kMissingField,
  kInvalidType,
  kInvalidValue,
  kUnknownType,
  kBadTime,
  kOutOfRange,
  kTimeOutOfRange,
};

inline constexpr std::string_view kCategoryNames[] = {
    "invalid_json", "too_large", "missing_field", "invalid_type",      "invalid_value",
    "unknown_type", "bad_time",  "out_of_range",  "time_out_of_range",
};

enum class Reason : uint8_t {
  kInvalidJson,
  kDuplicateKey,
  kTrailingContent,
  kInvalidNumber,
  kMessageTooLarge,
  kIdTooLong,
  kTextTooLong,
  kTooDeep,
  kMissingString,
  kMissingObject,
  kMissingId,
  kNotJsonObject,
  kNotObject,
  kNotString,
  kNotNumber,
  kNotInteger,
  kNotId,
  kEmpty,
  kBadSpecversion,
  kNegative,
  kBadVisibility,
  kOutOfRange,
  kUnknownType,
  kBadTime,
  kValueOutOfRange,
  kTimeOutOfRange,
};

struct ReasonInfo {
  Reason reason;
  Category category;
  std::string_view text;  // stable: ReasonCategory() looks messages up by this text
};

static_assert(kMaxEventBytes == 65536 && kMaxIdBytes == 256 && kMaxTextBytes == 2048 &&
                  kMaxNestingDepth == 32,
              "update the reason texts below");

inline constexpr ReasonInfo kReasons[] = {
    {Reason::kInvalidJson, Category::kInvalidJson, "invalid JSON"},
    {Reason::kDuplicateKey, Category::kInvalidJson, "duplicate key"},
    {Reason::kTrailingContent, Category::kInvalidJson, "trailing content after the JSON object"},
    {Reason::kInvalidNumber, Category::kInvalidJson, "invalid or out-of-range JSON number"},
    {Reason::kMessageTooLarge, Category::kTooLarge, "message is larger than 65536 bytes"},
    {Reason::kIdTooLong, Category::kTooLarge, "longer than 256 bytes"},
    {Reason::kTextTooLong, Category::kTooLarge, "longer than 2048 bytes"},
    {Reason::kTooDeep, Category::kTooLarge, "nested deeper than 32 levels"},
    {Reason::kMissingString, Category::kMissingField, "required string is missing"},
    {Reason::kMissingObject, Category::kMissingField, "required object is missing"},
    {Reason::kMissingId, Category::kMissingField, "required string or integer is missing"},
    {Reason::kNotJsonObject, Category::kInvalidType, "message must be a JSON object"},
    {Reason::kNotObject, Category::kInvalidType, "must be an object"},
    {Reason::kNotString, Category::kInvalidType, "must be a string"},
    {Reason::kNotNumber, Category::kInvalidType, "must be a number"},
    {Reason::kNotInteger, Category::kInvalidType, "must be an integer"},
    {Reason::kNotId, Category::kInvalidType, "must be a string or an integer"},
    {Reason::kEmpty, Category::kInvalidValue, "must not be empty"},
    {Reason::kBadSpecversion, Category::kInvalidValue, "must be \"1.0\""},
    {Reason::kNegative, Category::kInvalidValue, "must be >= 0"},
    {Reason::kBadVisibility, Category::kInvalidValue,
     "must be one of private, workspace, public_with_login, public_without_login"},
    {Reason::kOutOfRange, Category::kInvalidValue, "integer is out of range"},
    {Reason::kUnknownType, Category::kUnknownType, "unknown event type"},
    {Reason::kBadTime, Category::kBadTime, "not an RFC 3339 date-time with offset"},
    {Reason::kValueOutOfRange, Category::kOutOfRange, "value out of range"},
    {Reason::kTimeOutOfRange, Category::kTimeOutOfRange, "time out of range"},
};

static_assert(kMaxCount == 1'000'000'000'000 && kMaxCostUsd == 1e6,
              "update the range details below");
inline constexpr std::string_view kMaxCountDetail = "at most 1e12";
inline constexpr std::string_view kMaxCostDetail = "at most 1e6";

constexpr bool ReasonTableInOrder() {
  for (size_t i = 0; i < std::size(kReasons); ++i) {
    if (static_cast<size_t>(kReasons[i].reason) != i) return false;
  }
  return true;
}
static_assert(ReasonTableInOrder());

inline constexpr std::string_view kRootPath = "$";
inline constexpr std::string_view kUnknownTypeDetail =
    "expected agent.* or workflow.* with created, updated, deleted, executed, copied or shared";

// The Error for `reason` at JSON path `field`: message "<field>: <reason text>[ (<detail>)]";
// kResourceExhausted for the too-large category, else kInvalidArgument. Never holds the value.
// These three are cold: the parser's branches to them are its error paths, which the compiler
// cannot see from here now that they are defined in rejections.cpp.
[[gnu::cold]] std::unexpected<Error> Reject(std::string_view field, Reason reason,
                                            std::string_view detail = {});

// A simdjson failure while reading the value at `path`, other than a type mismatch (which the
// callers report with the type they expected).
[[gnu::cold]] std::unexpected<Error> JsonError(std::string_view path, simdjson::error_code e);

// The message is not an object: say whether it is JSON of another type or not JSON at all.
[[gnu::cold]] std::unexpected<Error> RejectNonObject(simdjson::ondemand::document& doc);

}  // namespace tally::event::internal
