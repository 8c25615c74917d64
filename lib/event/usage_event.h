#pragma once
// The usage event: one CloudEvents 1.0 message of the usage-events topic, parsed and validated.
//
//   tally::event::EventParser parser;                     // one per thread; reuses buffers
//   tally::Result<tally::event::UsageEvent> e = parser.Parse(message_bytes);
//   if (!e) dead_letter(e.error().message);               // reason names the field at fault
//   else if (e->kind == tally::event::EntityKind::kAgent &&
//            e->action == tally::event::Action::kExecuted) { ... }
//
// See ../../schemas/usage-event.schema.json for exactly what is accepted.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tally::event {

enum class EntityKind : uint8_t { kAgent = 0, kWorkflow = 1 };
inline constexpr int kEntityKindCount = 2;

enum class Action : uint8_t {
  kCreated = 0,
  kUpdated = 1,
  kDeleted = 2,
  kExecuted = 3,
  kCopied = 4,
  kShared = 5,
};
inline constexpr int kActionCount = 6;

// "agent" / "workflow"; "created" / ... / "shared".
const char* EntityKindName(EntityKind kind);
const char* ActionName(Action action);

// The CloudEvents `type` of a kind and action, e.g. "agent.executed". Static storage.
std::string_view EventTypeName(EntityKind kind, Action action);

// Inverse of EventTypeName: "workflow.copied" -> kWorkflow, kCopied. Exact, case-sensitive.
// Returns false (and leaves the outputs untouched) for any other string. Pure, thread-safe.
bool ParseEventType(std::string_view type, EntityKind* kind, Action* action);

// A validated event. Optional strings are empty when absent (an absent profile field never
// overwrites a known one); optional numbers are std::nullopt when absent.
struct UsageEvent {
  std::string id;      // CloudEvents id
  std::string source;  // CloudEvents source; (source, id) identifies the event
  EntityKind kind = EntityKind::kAgent;
  Action action = Action::kExecuted;
  int64_t time_ms = 0;  // event time, UTC epoch milliseconds

  std::string workspace_id;     // required
  std::string organization_id;  // optional
  std::string project_id;       // optional

  std::string user_id;  // required
  std::string user_name;
  std::string user_email;
  std::string user_photo;

  std::string entity_id;  // data.agent.id or data.workflow.id, required
  std::string entity_name;
  std::string entity_visibility;  // private | workspace | public_with_login | public_without_login
  std::string entity_owner_user_id;

  std::optional<double> duration_ms;
  std::optional<int64_t> tokens;
  std::optional<double> cost_usd;
  std::optional<double> message_credits;
  std::optional<double> integration_credits;
  std::string status;  // "ok", "error", ... (free text, optional)

  bool is_error() const { return status == "error"; }
};

}  // namespace tally::event
