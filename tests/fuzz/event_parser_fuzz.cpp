// Fuzz target for tally::event::EventParser: every message from Kafka or POST /v1/events goes
// through it (tests/fuzz/CMakeLists.txt: scripts/fuzz.sh runs it, every build replays its corpus).
//
// Checks beyond "does not crash": every rejection names a field, carries a "<field>: " message
// and maps to a known category; an accepted event satisfies the documented invariants; parsing
// the same bytes twice with a reused output gives the same result.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "event/event_parser.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckOutcome(const tally::Status& s, const tally::event::UsageEvent& e) {
  using namespace tally::event;
  if (!s) {
    const tally::Error& err = s.error();
    Check(!err.field.empty());
    Check(std::string_view(err.message).starts_with(err.field + ": "));
    Check(ReasonCategory(err) != "other");
    return;
  }
  Check(!e.id.empty() && e.id.size() <= kMaxIdBytes);
  Check(!e.source.empty() && e.source.size() <= kMaxIdBytes);
  Check(!e.workspace_id.empty() && !e.user_id.empty() && !e.entity_id.empty());
  Check(!e.duration_ms || *e.duration_ms >= 0);
  Check(!e.tokens || *e.tokens >= 0);
  Check(!e.cost_usd || *e.cost_usd >= 0);
  Check(e.user_name.size() <= kMaxTextBytes && e.status.size() <= kMaxTextBytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tally::event::EventParser parser;
  static tally::event::UsageEvent event;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  tally::Status first = parser.ParseInto(input, &event);
  CheckOutcome(first, event);
  tally::event::UsageEvent copy = event;
  tally::Status second = parser.ParseInto(input, &event);
  Check(first.has_value() == second.has_value());
  if (first) {
    Check(copy.id == event.id && copy.time_ms == event.time_ms && copy.user_id == event.user_id &&
          copy.entity_id == event.entity_id && copy.tokens == event.tokens);
  } else {
    Check(first.error().message == second.error().message);
  }
  return 0;
}
