#pragma once
// Parse and validate one usage event (a CloudEvents 1.0 JSON object) into a UsageEvent.
//
//   tally::event::EventParser parser;  // one per thread: it owns reusable buffers
//   tally::event::UsageEvent event;    // reused across calls: its strings keep their capacity
//   for (const Message& m : batch) {
//     tally::Status s = parser.ParseInto(m.payload(), &event);
//     if (!s) {
//       dead_letter(m, s.error().message);   // "data.user.id: required string is missing"
//       rejected.Inc(tally::event::ReasonCategory(s.error()));  // "missing_field"
//       continue;
//     }
//     Fold(event);
//   }
//
// What is accepted is described exactly by schemas/usage-event.schema.json (its examples and
// x-counterexamples are checked by schema_examples_test.cpp).
//
// Errors: every rejection is an Error whose
//   - `field` is the JSON path at fault ("time", "data.user.id", "data.agent"), or "$" for the
//     message as a whole (not JSON, not an object, too large, trailing content);
//   - `message` is "<field>: <reason>", a short stable sentence, e.g.
//     "data.tokens: must be an integer", "type: unknown event type (...)". It never echoes the
//     offending value, so it is safe to put in a dead-letter header or a log line;
//   - `code` is kResourceExhausted for size limits, kInvalidArgument otherwise.
// ReasonCategory() maps an Error to one of a small fixed set of labels for metrics.
//
// When several rules are broken the first one met in document order is reported; missing
// required fields are reported when their enclosing object ends.

#include <cstddef>
#include <memory>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "event/usage_event.h"

namespace tally::event {

// Largest accepted message, in bytes (the whole JSON text). Larger: rejected as too_large.
inline constexpr size_t kMaxEventBytes = 64 * 1024;
// Longest identifier (id, source, workspace/organization/project id, user id, entity id,
// owner_user_id), in bytes after unescaping.
inline constexpr size_t kMaxIdBytes = 256;
// Longest free-text field (user name/email/photo, entity name, status), in bytes after unescaping.
inline constexpr size_t kMaxTextBytes = 2048;
// Deepest nesting of objects/arrays accepted (the top-level object is depth 1). Unknown fields
// are walked and validated as JSON; anything deeper is rejected as too_large.
inline constexpr int kMaxNestingDepth = 32;

// Largest accepted tokens, duration_ms, message_credits and integration_credits (inclusive).
inline constexpr int64_t kMaxCount = 1'000'000'000'000;  // 10^12
// Largest accepted cost_usd of one event (inclusive), in US dollars.
inline constexpr double kMaxCostUsd = 1e6;

// Default earliest accepted event time: 2000-01-01T00:00:00Z, in UTC epoch milliseconds.
inline constexpr int64_t kDefaultMinEventTimeMs = 946'684'800'000;
// Default tolerance for event times ahead of the clock: 1 hour, in milliseconds.
inline constexpr int64_t kDefaultMaxFutureMs = 3'600'000;

// Bounds on the event time. An event is accepted when
//   min_time_ms <= time_ms <= clock.NowMillis() + max_future_ms
// ("now" is read once per parsed event). Outside: "time_out_of_range".
struct Limits {
  int64_t min_time_ms = kDefaultMinEventTimeMs;
  int64_t max_future_ms = kDefaultMaxFutureMs;  // >= 0
  // Where "now" comes from; null means the system clock. Not owned: must outlive the parser.
  const Clock* clock = nullptr;
};

// Parses a duration such as "1h", "30m", "3600s", "500ms" or "2d" (a non-negative integer and a
// unit; a bare integer means seconds) into milliseconds. kInvalidArgument otherwise. Pure.
Result<int64_t> ParseDurationMillis(std::string_view text);

// Default flag values, the documented defaults of Limits.
inline constexpr std::string_view kDefaultMinEventTimeFlag = "2000-01-01T00:00:00Z";
inline constexpr std::string_view kDefaultMaxFutureFlag = "1h";

// Limits from the values of the --min-event-time (RFC 3339) and --max-future (a duration, see
// ParseDurationMillis) flags of tallyd and `tally replay`, with `clock` (may be null: the
// system clock). kInvalidArgument naming the flag when a value does not parse. Pure.
Result<Limits> LimitsFromFlags(std::string_view min_event_time, std::string_view max_future,
                               const Clock* clock);

// Metric label of a rejection made by EventParser, one of:
//   "invalid_json"   not JSON, bad escape/number, duplicate known key, trailing content
//   "too_large"      message over kMaxEventBytes, string over its limit, nesting too deep
//   "missing_field"  a required field is absent or null
//   "invalid_type"   a field has the wrong JSON type (including a non-object message)
//   "invalid_value"  right type, wrong value: empty required string, specversion != "1.0",
//                    negative number, unknown visibility, identifier integer out of range
//   "out_of_range"   a measure above its documented maximum (kMaxCount, kMaxCostUsd):
//                    "data.tokens: value out of range (at most 1e12)"
//   "unknown_type"   `type` is not one of the twelve known event types
//   "bad_time"       `time` is not an RFC 3339 date-time with an offset
//   "time_out_of_range"  `time` is before Limits::min_time_ms or after now + max_future_ms:
//                    "time: time out of range (before 2000-01-01T00:00:00Z)"
// Errors that do not come from EventParser map to "other". Pure, thread-safe, no allocation.
std::string_view ReasonCategory(const Error& error);

// Parses usage events. Not thread-safe: use one instance per thread. Movable, not copyable.
// Event times are checked against Limits (the documented defaults unless given).
// Holds a simdjson parser and a padded copy buffer sized for kMaxEventBytes (~450 KiB in all),
// allocated once at construction; steady-state parsing does not allocate. A moved-from parser
// may only be destroyed or assigned to.
class EventParser {
 public:
  explicit EventParser(const Limits& limits = Limits());
  ~EventParser();
  EventParser(EventParser&&) noexcept;
  EventParser& operator=(EventParser&&) noexcept;
  EventParser(const EventParser&) = delete;
  EventParser& operator=(const EventParser&) = delete;

  // Parses and validates `json` into `*out`, overwriting every field (absent optional strings
  // become empty, absent numbers nullopt) and reusing the capacity of out's strings. `json` is
  // only read during the call. On error returns the rejection (see above) and leaves `*out` in
  // an unspecified but valid state. `out` must not be null.
  Status ParseInto(std::string_view json, UsageEvent* out);

  // Convenience: ParseInto a fresh UsageEvent (allocates its strings).
  Result<UsageEvent> Parse(std::string_view json);

  // Replaces the time bounds for the following parses. `limits.clock` (if not null) must outlive
  // the parser.
  void set_limits(const Limits& limits);
  const Limits& limits() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tally::event
