#include "event/event_parser.h"

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "common/calendar.h"
#include "event/internal/json_fields.h"
#include "event/internal/rejections.h"

namespace tally::event {
namespace {

namespace od = simdjson::ondemand;
using internal::AssignTo;
using internal::ForEachField;
using internal::JsonError;
using internal::Key;
using internal::kMaxCostDetail;
using internal::kMaxCountDetail;
using internal::kRootPath;
using internal::kUnknownTypeDetail;
using internal::ReadAmount;
using internal::ReadCount;
using internal::ReadId;
using internal::ReadObject;
using internal::ReadString;
using internal::ReadStringView;
using internal::Reason;
using internal::Reject;
using internal::RejectNonObject;
using simdjson::error_code;

enum TopKey { kSpecversion, kId, kSource, kType, kTime, kData };
constexpr Key kTopKeys[] = {{"specversion", "specversion"},
                            {"id", "id"},
                            {"source", "source"},
                            {"type", "type"},
                            {"time", "time"},
                            {"data", "data"}};

enum DataKey {
  kWorkspaceId,
  kOrganizationId,
  kProjectId,
  kUser,
  kAgent,
  kWorkflow,
  kDurationMs,
  kTokens,
  kCostUsd,
  kMessageCredits,
  kIntegrationCredits,
  kStatus
};
constexpr Key kDataKeys[] = {
    {"workspace_id", "data.workspace_id"},
    {"organization_id", "data.organization_id"},
    {"project_id", "data.project_id"},
    {"user", "data.user"},
    {"agent", "data.agent"},
    {"workflow", "data.workflow"},
    {"duration_ms", "data.duration_ms"},
    {"tokens", "data.tokens"},
    {"cost_usd", "data.cost_usd"},
    {"message_credits", "data.message_credits"},
    {"integration_credits", "data.integration_credits"},
    {"status", "data.status"},
};

enum UserKey { kUserId, kUserName, kUserEmail, kUserPhoto };
constexpr Key kUserKeys[] = {{"id", "data.user.id"},
                             {"name", "data.user.name"},
                             {"email", "data.user.email"},
                             {"photo", "data.user.photo"}};

enum EntityKey { kEntityId, kEntityName, kEntityVisibility, kEntityOwner };
constexpr Key kAgentKeys[] = {{"id", "data.agent.id"},
                              {"name", "data.agent.name"},
                              {"visibility", "data.agent.visibility"},
                              {"owner_user_id", "data.agent.owner_user_id"}};
constexpr Key kWorkflowKeys[] = {{"id", "data.workflow.id"},
                                 {"name", "data.workflow.name"},
                                 {"visibility", "data.workflow.visibility"},
                                 {"owner_user_id", "data.workflow.owner_user_id"}};

bool IsVisibility(std::string_view s) {
  return s == "private" || s == "workspace" || s == "public_with_login" ||
         s == "public_without_login";
}

// data.agent or data.workflow, kept aside until `type` says which one is the subject (keys may
// come in any order). Both are validated when present.
struct EntityScratch {
  bool present = false;
  bool has_id = false;
  std::string id, name, visibility, owner_user_id;

  void Clear() {
    present = has_id = false;
    id.clear();
    name.clear();
    visibility.clear();
    owner_user_id.clear();
  }
};

void Reset(UsageEvent* e) {
  e->id.clear();
  e->source.clear();
  e->kind = EntityKind::kAgent;
  e->action = Action::kExecuted;
  e->time_ms = 0;
  e->workspace_id.clear();
  e->organization_id.clear();
  e->project_id.clear();
  e->user_id.clear();
  e->user_name.clear();
  e->user_email.clear();
  e->user_photo.clear();
  e->entity_id.clear();
  e->entity_name.clear();
  e->entity_visibility.clear();
  e->entity_owner_user_id.clear();
  e->duration_ms.reset();
  e->tokens.reset();
  e->cost_usd.reset();
  e->message_credits.reset();
  e->integration_credits.reset();
  e->status.clear();
}

// "time is not RFC 3339 (too short)" -> "too short"; keeps the reason short and free of the
// value.
std::string_view TimeDetail(std::string_view m) {
  if (m.starts_with("time is ")) m.remove_prefix(8);
  if (m.starts_with("not RFC 3339 (") && m.ends_with(")")) {
    m.remove_prefix(14);
    m.remove_suffix(1);
  }
  return m;
}

}  // namespace

struct EventParser::Impl {
  Limits limits;
  od::parser parser{kMaxEventBytes};
  std::unique_ptr<char[]> buffer{new char[kMaxEventBytes + simdjson::SIMDJSON_PADDING]};
  EntityScratch agent, workflow;

  explicit Impl(const Limits& l) : limits(l) {
    // Sized once for the largest message so that no parse reallocates. A failure here only
    // means iterate() retries the allocation and reports it.
    [[maybe_unused]] error_code ignored = parser.allocate(kMaxEventBytes);
  }

  Status Run(std::string_view json, UsageEvent* out);
  Status CheckTime(std::string_view path, int64_t time_ms) const;
  Status ParseData(od::value& v, UsageEvent* out, bool* present);
  Status ParseUser(od::value& v, UsageEvent* out, bool* present);
  template <const auto& kKeys>
  Status ParseEntity(od::value& v, EntityScratch* e);
};

Status EventParser::Impl::Run(std::string_view json, UsageEvent* out) {
  if (json.size() > kMaxEventBytes) return Reject(kRootPath, Reason::kMessageTooLarge);
  // simdjson reads up to SIMDJSON_PADDING bytes past the end: parse a padded copy.
  std::memcpy(buffer.get(), json.data(), json.size());
  std::memset(buffer.get() + json.size(), ' ', simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (auto e = parser.iterate(buffer.get(), json.size(), json.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc)) {
    return JsonError(kRootPath, e);
  }
  od::object root;
  if (auto e = doc.get_object().get(root)) {
    if (e == simdjson::INCORRECT_TYPE) return RejectNonObject(doc);
    return JsonError(kRootPath, e);
  }

  Reset(out);
  agent.Clear();
  workflow.Clear();
  bool has_spec = false, has_id = false, has_source = false, has_type = false, has_time = false,
       has_data = false;

  TALLY_EVENT_TRY(ForEachField<kTopKeys>(
      root, "", 1, [&](size_t key, od::value& v, std::string_view path) -> Status {
        std::string_view s;
        switch (key) {
          case kSpecversion:
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_spec));
            if (has_spec && s != "1.0") return Reject(path, Reason::kBadSpecversion);
            return Ok();
          case kId:
            return ReadString(v, path, kMaxIdBytes, true, &out->id, &has_id);
          case kSource:
            return ReadString(v, path, kMaxIdBytes, true, &out->source, &has_source);
          case kType:
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_type));
            if (!has_type) return Ok();
            if (s.empty()) return Reject(path, Reason::kEmpty);
            if (!ParseEventType(s, &out->kind, &out->action)) {
              return Reject(path, Reason::kUnknownType, kUnknownTypeDetail);
            }
            return Ok();
          case kTime: {
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_time));
            if (!has_time) return Ok();
            if (s.empty()) return Reject(path, Reason::kEmpty);
            Result<int64_t> t = ParseRfc3339Millis(s);
            if (!t) return Reject(path, Reason::kBadTime, TimeDetail(t.error().message));
            TALLY_EVENT_TRY(CheckTime(path, *t));
            out->time_ms = *t;
            return Ok();
          }
          case kData:
            return ParseData(v, out, &has_data);
        }
        return Ok();
      }));

  const char* end;
  if (auto e = doc.current_location().get(end); e != simdjson::OUT_OF_BOUNDS) {
    return Reject(kRootPath, Reason::kTrailingContent);
  }

  if (!has_spec) return Reject("specversion", Reason::kMissingString);
  if (!has_id) return Reject("id", Reason::kMissingString);
  if (!has_source) return Reject("source", Reason::kMissingString);
  if (!has_type) return Reject("type", Reason::kMissingString);
  if (!has_time) return Reject("time", Reason::kMissingString);
  if (!has_data) return Reject("data", Reason::kMissingObject);

  const bool is_agent = out->kind == EntityKind::kAgent;
  const EntityScratch& subject = is_agent ? agent : workflow;
  if (!subject.present)
    return Reject(is_agent ? "data.agent" : "data.workflow", Reason::kMissingObject);
  if (!subject.has_id)
    return Reject(is_agent ? "data.agent.id" : "data.workflow.id", Reason::kMissingId);
  AssignTo(&out->entity_id, subject.id);
  AssignTo(&out->entity_name, subject.name);
  AssignTo(&out->entity_visibility, subject.visibility);
  AssignTo(&out->entity_owner_user_id, subject.owner_user_id);
  return Ok();
}

Status EventParser::Impl::CheckTime(std::string_view path, int64_t time_ms) const {
  if (time_ms < limits.min_time_ms) {
    return Reject(path, Reason::kTimeOutOfRange,
                  "before " + FormatRfc3339Seconds(limits.min_time_ms));
  }
  const int64_t now = limits.clock != nullptr ? limits.clock->NowMillis() : Clock().NowMillis();
  int64_t latest;
  if (__builtin_add_overflow(now, limits.max_future_ms, &latest)) latest = INT64_MAX;
  if (time_ms > latest) {
    return Reject(
        path, Reason::kTimeOutOfRange,
        "more than " + std::to_string(limits.max_future_ms / 1000) + " s after the current time");
  }
  return Ok();
}

Status EventParser::Impl::ParseData(od::value& v, UsageEvent* out, bool* present) {
  od::object obj;
  TALLY_EVENT_TRY(ReadObject(v, "data", &obj, present));
  if (!*present) return Ok();
  bool has_workspace = false, has_user = false, unused = false;
  TALLY_EVENT_TRY(ForEachField<kDataKeys>(
      obj, "data", 2, [&](size_t key, od::value& v, std::string_view path) -> Status {
        switch (key) {
          case kWorkspaceId:
            return ReadString(v, path, kMaxIdBytes, true, &out->workspace_id, &has_workspace);
          case kOrganizationId:
            return ReadString(v, path, kMaxIdBytes, false, &out->organization_id, &unused);
          case kProjectId:
            return ReadString(v, path, kMaxIdBytes, false, &out->project_id, &unused);
          case kUser:
            return ParseUser(v, out, &has_user);
          case kAgent:
            return ParseEntity<kAgentKeys>(v, &agent);
          case kWorkflow:
            return ParseEntity<kWorkflowKeys>(v, &workflow);
          case kDurationMs:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->duration_ms);
          case kTokens:
            return ReadCount(v, path, &out->tokens);
          case kCostUsd:
            return ReadAmount(v, path, kMaxCostUsd, kMaxCostDetail, &out->cost_usd);
          case kMessageCredits:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->message_credits);
          case kIntegrationCredits:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->integration_credits);
          case kStatus:
            return ReadString(v, path, kMaxTextBytes, false, &out->status, &unused);
        }
        return Ok();
      }));
  if (!has_workspace) return Reject("data.workspace_id", Reason::kMissingString);
  if (!has_user) return Reject("data.user", Reason::kMissingObject);
  return Ok();
}

Status EventParser::Impl::ParseUser(od::value& v, UsageEvent* out, bool* present) {
  od::object obj;
  TALLY_EVENT_TRY(ReadObject(v, "data.user", &obj, present));
  if (!*present) return Ok();
  bool has_id = false, unused = false;
  TALLY_EVENT_TRY(ForEachField<kUserKeys>(
      obj, "data.user", 3, [&](size_t key, od::value& v, std::string_view path) -> Status {
        switch (key) {
          case kUserId:
            return ReadId(v, path, true, &out->user_id, &has_id);
          case kUserName:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_name, &unused);
          case kUserEmail:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_email, &unused);
          case kUserPhoto:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_photo, &unused);
        }
        return Ok();
      }));
  if (!has_id) return Reject("data.user.id", Reason::kMissingId);
  return Ok();
}

template <const auto& kKeys>
Status EventParser::Impl::ParseEntity(od::value& v, EntityScratch* e) {
  // kKeys[0].path is "data.<kind>.id": the object's own path is its prefix.
  constexpr std::string_view path = kKeys[0].path.substr(0, kKeys[0].path.size() - 3);
  od::object obj;
  // A second data.agent/data.workflow key never gets here: ForEachField rejects duplicates.
  TALLY_EVENT_TRY(ReadObject(v, path, &obj, &e->present));
  if (!e->present) return Ok();
  bool unused = false;
  return ForEachField<kKeys>(
      obj, path, 3, [&](size_t key, od::value& v, std::string_view field) -> Status {
        switch (key) {
          case kEntityId:
            return ReadId(v, field, true, &e->id, &e->has_id);
          case kEntityName:
            return ReadString(v, field, kMaxTextBytes, false, &e->name, &unused);
          case kEntityVisibility: {
            std::string_view s;
            bool has_visibility = false;
            TALLY_EVENT_TRY(ReadStringView(v, field, &s, &has_visibility));
            if (!has_visibility) return Ok();
            if (!IsVisibility(s)) return Reject(field, Reason::kBadVisibility);
            AssignTo(&e->visibility, s);
            return Ok();
          }
          case kEntityOwner:
            return ReadId(v, field, false, &e->owner_user_id, &unused);
        }
        return Ok();
      });
}

EventParser::EventParser(const Limits& limits) : impl_(std::make_unique<Impl>(limits)) {}
EventParser::~EventParser() = default;
EventParser::EventParser(EventParser&&) noexcept = default;
EventParser& EventParser::operator=(EventParser&&) noexcept = default;

Status EventParser::ParseInto(std::string_view json, UsageEvent* out) {
  return impl_->Run(json, out);
}

void EventParser::set_limits(const Limits& limits) { impl_->limits = limits; }
const Limits& EventParser::limits() const { return impl_->limits; }

Result<int64_t> ParseDurationMillis(std::string_view text) {
  auto bad = [&] {
    return Fail(ErrorCode::kInvalidArgument,
                "not a duration (a non-negative integer and a unit: ms, s, m, h or d; e.g. 1h, "
                "30m, 3600s)");
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad();
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (ec != std::errc() || ptr != text.data() + digits) return bad();
  const std::string_view unit = text.substr(digits);
  int64_t scale;
  if (unit == "ms") {
    scale = 1;
  } else if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return bad();
  }
  int64_t ms;
  if (__builtin_mul_overflow(n, scale, &ms)) return bad();
  return ms;
}

Result<Limits> LimitsFromFlags(std::string_view min_event_time, std::string_view max_future,
                               const Clock* clock) {
  Result<int64_t> min = ParseRfc3339Millis(min_event_time);
  if (!min) {
    return Fail(ErrorCode::kInvalidArgument,
                "--min-event-time: " + min.error().message + " (example: 2000-01-01T00:00:00Z)",
                "min_event_time");
  }
  Result<int64_t> future = ParseDurationMillis(max_future);
  if (!future) {
    return Fail(ErrorCode::kInvalidArgument, "--max-future: " + future.error().message,
                "max_future");
  }
  return Limits{.min_time_ms = *min, .max_future_ms = *future, .clock = clock};
}

Result<UsageEvent> EventParser::Parse(std::string_view json) {
  UsageEvent event;
  if (Status s = impl_->Run(json, &event); !s) return std::unexpected(std::move(s.error()));
  return event;
}

}  // namespace tally::event
