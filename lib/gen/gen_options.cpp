#include <string>
#include <utility>

#include "common/calendar.h"
#include "gen/generator.h"

namespace tally::gen {

Result<Mix> ParseMix(std::string_view name) {
  if (name == "default") return Mix::kDefault;
  if (name == "executions") return Mix::kExecutions;
  return Fail(ErrorCode::kInvalidArgument, "The mix must be one of: default, executions.", "mix");
}

GenOptions MixDefaults(Mix mix) {
  GenOptions o;
  o.mix = mix;
  if (mix == Mix::kExecutions) {
    o.workspaces = 20;
    o.organizations = 5;
    o.agents = 1000;
    o.workflows = 0;
    o.users = 10000;
    o.days = 90;
  }
  return o;
}

const char* MalformedKindName(MalformedKind kind) {
  switch (kind) {
    case MalformedKind::kNone:
      return "none";
    case MalformedKind::kInvalidJson:
      return "invalid_json";
    case MalformedKind::kTruncatedJson:
      return "truncated_json";
    case MalformedKind::kMissingId:
      return "missing_id";
    case MalformedKind::kMissingWorkspaceId:
      return "missing_workspace_id";
    case MalformedKind::kMissingUserId:
      return "missing_user_id";
    case MalformedKind::kMissingEntityId:
      return "missing_entity_id";
    case MalformedKind::kIllTypedField:
      return "ill_typed_field";
    case MalformedKind::kBadTime:
      return "bad_time";
    case MalformedKind::kUnknownType:
      return "unknown_type";
    case MalformedKind::kNegativeNumber:
      return "negative_number";
    case MalformedKind::kWrongSpecVersion:
      return "wrong_specversion";
    case MalformedKind::kOversized:
      return "oversized";
    case MalformedKind::kNotAnObject:
      return "not_an_object";
  }
  return "unknown";
}

Status ValidateGenOptions(const GenOptions& o) {
  auto bad = [](const char* field, std::string msg) {
    return Fail(ErrorCode::kInvalidArgument, std::move(msg), field);
  };
  if (o.events < 0) return bad("events", "The number of events must be >= 0.");
  if (o.first_id < 0) return bad("first_id", "The first event id must be >= 0.");
  if (o.workspaces < 1) return bad("workspaces", "At least one workspace is needed.");
  if (o.organizations < 1) return bad("organizations", "At least one organization is needed.");
  if (o.projects_per_workspace < 1) {
    return bad("projects_per_workspace", "At least one project per workspace is needed.");
  }
  if (o.users < 1) return bad("users", "At least one user is needed.");
  if (o.agents < 0) return bad("agents", "The number of agents must be >= 0.");
  if (o.workflows < 0) return bad("workflows", "The number of workflows must be >= 0.");
  if (o.agents + o.workflows < 1) return bad("agents", "At least one agent or workflow is needed.");
  if (o.mix == Mix::kExecutions) {
    if (o.agents < 1) return bad("agents", "The executions mix needs at least one agent.");
    if (o.workflows != 0) return bad("workflows", "The executions mix has no workflows.");
  }
  if (o.days < 1) return bad("days", "At least one day is needed.");
  if (!(o.duplicate_fraction >= 0 && o.duplicate_fraction <= 1)) {
    return bad("duplicate_fraction", "The duplicate fraction must be within [0, 1].");
  }
  if (!(o.malformed_fraction >= 0 && o.malformed_fraction <= 1)) {
    return bad("malformed_fraction", "The malformed fraction must be within [0, 1].");
  }
  if (o.duplicate_fraction + o.malformed_fraction > 1) {
    return bad("duplicate_fraction",
               "The duplicate and malformed fractions add up to more than 1.");
  }
  if (!o.end_day.empty()) {
    if (auto d = ParseDay(o.end_day); !d) {
      return bad("end_day", "The end day must be a date YYYY-MM-DD: " + d.error().message);
    }
  }
  return Ok();
}

}  // namespace tally::gen
