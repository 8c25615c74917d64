#include "event/usage_event.h"

namespace tally::event {
namespace {

constexpr const char* kKindNames[kEntityKindCount] = {"agent", "workflow"};
constexpr const char* kActionNames[kActionCount] = {"created",  "updated", "deleted",
                                                    "executed", "copied",  "shared"};
constexpr std::string_view kTypeNames[kEntityKindCount][kActionCount] = {
    {"agent.created", "agent.updated", "agent.deleted", "agent.executed", "agent.copied",
     "agent.shared"},
    {"workflow.created", "workflow.updated", "workflow.deleted", "workflow.executed",
     "workflow.copied", "workflow.shared"},
};

}  // namespace

const char* EntityKindName(EntityKind kind) {
  auto i = static_cast<size_t>(kind);
  return i < kEntityKindCount ? kKindNames[i] : "unknown";
}

const char* ActionName(Action action) {
  auto i = static_cast<size_t>(action);
  return i < kActionCount ? kActionNames[i] : "unknown";
}

std::string_view EventTypeName(EntityKind kind, Action action) {
  auto k = static_cast<size_t>(kind);
  auto a = static_cast<size_t>(action);
  if (k >= kEntityKindCount || a >= kActionCount) return "unknown";
  return kTypeNames[k][a];
}

bool ParseEventType(std::string_view type, EntityKind* kind, Action* action) {
  EntityKind k;
  if (type.starts_with("agent.")) {
    k = EntityKind::kAgent;
    type.remove_prefix(6);
  } else if (type.starts_with("workflow.")) {
    k = EntityKind::kWorkflow;
    type.remove_prefix(9);
  } else {
    return false;
  }
  for (int a = 0; a < kActionCount; ++a) {
    if (type == kActionNames[a]) {
      *kind = k;
      *action = static_cast<Action>(a);
      return true;
    }
  }
  return false;
}

}  // namespace tally::event
