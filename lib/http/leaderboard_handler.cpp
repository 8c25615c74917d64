#include "http/leaderboard_handler.h"

#include <charconv>

#include "common/json_writer.h"
#include "http/error_mapping.h"
#include "http/leaderboard_request.h"

namespace tally::http {
namespace {

// The int64 value of a canonical decimal integer, so that "42" renders as 42 (as documented)
// while ids like "007" or "u42" keep their exact spelling as strings.
std::optional<int64_t> CanonicalInteger(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty() || (digits.front() == '0' && (digits.size() > 1 || s.size() > 1))) {
    return std::nullopt;  // "", "-", leading zeros, "-0"
  }
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

Response ValidationError(const Error& e) {
  return ValidationErrorResponse(
      {FieldError{e.field.empty() ? std::string("request") : e.field, e.message}});
}

}  // namespace

LeaderboardHandler::LeaderboardHandler(std::shared_ptr<const KeyStore> keys,
                                       LeaderboardBackend backend)
    : keys_(std::move(keys)), backend_(std::move(backend)) {}

Response LeaderboardHandler::Handle(const Request& request) const {
  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();

  auto parsed = ParseLeaderboardRequest(request.query);
  if (!parsed) return ValidationErrorResponse(parsed.error());
  query::LeaderboardRequest& req = parsed->request;

  if (parsed->workspace_uuid.empty()) {
    const std::string& org = parsed->organization_multiplai_id;
    Result<std::string> ws = backend_.resolve_organization(org);
    if (!ws) {
      const bool may_know = key->admin || key->HoldsOrganization(org);
      switch (ws.error().code) {
        case ErrorCode::kNotFound:
          return key->admin ? WorkspaceNotFoundResponse() : ForbiddenResponse();
        case ErrorCode::kInvalidArgument:
          return may_know ? ValidationError(ws.error()) : ForbiddenResponse();
        default:
          return ErrorResponse(ws.error());
      }
    }
    req.workspace_id = std::move(*ws);
  }
  const std::string& ws = req.workspace_id;

  // A key that does not hold the workspace learns nothing about it, not even whether it exists.
  if (!key->admin && !key->IsMember(ws)) return ForbiddenResponse();
  if (!backend_.workspace_known(ws) && !keys_->AnyKeyNamesWorkspace(ws)) {
    return WorkspaceNotFoundResponse();
  }
  if (backend_.route) {
    if (auto elsewhere = backend_.route(request, ws)) return std::move(*elsewhere);
  }

  Result<query::LeaderboardResult> result = backend_.run(req);
  if (!result) {
    if (result.error().code == ErrorCode::kInvalidArgument) return ValidationError(result.error());
    return ErrorResponse(result.error());
  }
  return JsonResponse(200, RenderLeaderboard(*result));
}

std::string RenderLeaderboard(const query::LeaderboardResult& result) {
  std::string out;
  out.reserve(16 + result.rows.size() * 192);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("data").BeginArray();
  for (const query::LeaderboardRow& row : result.rows) {
    w.BeginObject();
    w.Key("rank").Int(row.rank);
    w.Key("user").BeginObject();
    w.Key("id");
    if (std::optional<int64_t> id = CanonicalInteger(row.user_id)) {
      w.Int(*id);
    } else {
      w.String(row.user_id);
    }
    w.Key("name").StringOrNull(row.name);
    w.Key("photo").StringOrNull(row.photo);
    w.EndObject();
    w.Key("agent_count").Int(row.agent_count);
    w.Key("agent_count_previous_period").Int(row.agent_count_previous_period);
    w.Key("growth_percentage");
    if (row.growth_percentage) {
      w.Double(*row.growth_percentage);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

}  // namespace tally::http
