#include "http/requests_handler.h"

#include <algorithm>
#include <cctype>

#include "common/calendar.h"
#include "common/json_writer.h"
#include "http/internal/date_range_params.h"
#include "http/requests_share.h"

namespace tally::http {
namespace {

constexpr size_t kMaxAgentNameBytes = 256;

// The value of a header under either spelling; empty values count as absent. Two different
// values are a 422 naming the canonical (hyphenated) header.
std::optional<std::string> ScopeHeader(const Request& request, std::string_view canonical,
                                       std::string_view alternate, FieldErrors* errors) {
  // Every occurrence under either spelling must agree: a second, different value could
  // otherwise mean one thing to a proxy and another to tally.
  auto same_name = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  std::optional<std::string> value;
  for (const auto& [name, v] : request.headers) {
    if (v.empty() || !(same_name(name, canonical) || same_name(name, alternate))) continue;
    if (value && *value != v) {
      errors->push_back({std::string(canonical), "The " + std::string(canonical) + " and " +
                                                     std::string(alternate) +
                                                     " headers must name one value."});
      return std::nullopt;
    }
    value = v;
  }
  return value;
}

Response OrganizationNotFound() {
  return ErrorResponse(Error{ErrorCode::kNotFound, "Organization not found.", "organization-id"});
}

}  // namespace

std::expected<RequestsParams, FieldErrors> ParseRequestsParams(const Request& request) {
  FieldErrors errors;
  RequestsParams out;
  const std::string* start = request.FindQuery("startDate");
  const std::string* end = request.FindQuery("endDate");
  if (!start) errors.push_back({"startDate", "The startDate field is required."});
  if (!end) errors.push_back({"endDate", "The endDate field is required."});
  if (start && end) {
    auto range = internal::ParseDateRangeParams("startDate", start, "endDate", end,
                                                query::kRequestsMaxDays, &errors);
    if (range) {
      out.query.start = range->first;
      out.query.end = range->second;
    }
  } else if (start && !ParseDay(*start)) {
    errors.push_back({"startDate", "The startDate field must match the format Y-m-d."});
  } else if (end && !ParseDay(*end)) {
    errors.push_back({"endDate", "The endDate field must match the format Y-m-d."});
  }
  if (const std::string* name = request.FindQuery("agentName"); name && !name->empty()) {
    if (name->size() > kMaxAgentNameBytes) {
      errors.push_back({"agentName", "The agentName field must not be longer than " +
                                         std::to_string(kMaxAgentNameBytes) + " bytes."});
    } else {
      out.query.agent_name = *name;
    }
  }
  out.organization = ScopeHeader(request, "organization-id", "OrganizationId", &errors);
  out.query.project_id = ScopeHeader(request, "project-id", "ProjectId", &errors);
  if (!errors.empty()) return std::unexpected(std::move(errors));
  return out;
}

RequestsHandler::RequestsHandler(std::shared_ptr<const KeyStore> keys, RequestsBackend backend)
    : keys_(std::move(keys)), backend_(std::move(backend)) {}

Response RequestsHandler::Handle(const Request& request) const {
  std::optional<query::RequestsMetric> metric =
      query::ParseRequestsMetric(request.PathParam("metric"));
  if (!metric) return RouteNotFoundResponse();

  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();

  auto params = ParseRequestsParams(request);
  if (!params) return ValidationErrorResponse(params.error());
  query::RequestsQuery& q = params->query;

  if (!key->admin && key->organizations.empty()) return ForbiddenResponse();
  if (params->organization) {
    const std::string& org = *params->organization;
    // A key learns nothing about organizations it does not hold, not even whether they exist.
    if (!key->admin && !key->HoldsOrganization(org)) return ForbiddenResponse();
    if (key->admin && !backend_.organization_known(org)) return OrganizationNotFound();
    q.organizations = {org};
  } else if (key->admin) {
    q.organizations = backend_.all_organizations();
  } else {
    q.organizations = key->organizations;
  }
  auto failed = [](const Error& error) {
    if (error.code == ErrorCode::kInvalidArgument) {
      return ValidationErrorResponse(
          {FieldError{error.field.empty() ? std::string("request") : error.field, error.message}});
    }
    Response r = ErrorResponse(error);
    if (r.status == 503) r.headers.emplace_back("Retry-After", "1");
    return r;
  };
  if (const std::string* share = request.FindHeader(kRequestsShareHeader);
      share != nullptr && backend_.collect) {
    auto workspaces = DecodeShareWorkspaces(*share);
    if (!workspaces) return failed(workspaces.error());
    auto collected = backend_.collect(*metric, q, *workspaces);
    if (!collected) return failed(collected.error());
    return JsonResponse(200, RenderRequestsShare(*collected));
  }

  Result<query::RequestsResult> result =
      backend_.gather ? backend_.gather(request, *metric, q) : backend_.run(*metric, q);
  if (!result) return failed(result.error());
  return JsonResponse(200, RenderRequests(*metric, *result));
}

namespace {

// {"agentUsage":[...]} appended straight to `out`: thousands of rows, so no per-value writer
// bookkeeping; the same bytes JsonWriter would write.
void RenderAgentUsage(const std::vector<query::UsageRow>& rows, std::string* out) {
  size_t bytes = 32;
  for (const query::UsageRow& u : rows) bytes += 104 + u.user.size();
  out->reserve(bytes);
  out->append(R"({"agentUsage":[)");
  bool first = true;
  for (const query::UsageRow& u : rows) {
    out->append(first ? R"({"totalCost":)" : R"(,{"totalCost":)");
    first = false;
    AppendJsonDouble(out, u.cost);
    out->append(R"(,"totalRequests":)");
    AppendJsonInt(out, static_cast<int64_t>(u.requests));
    out->append(R"(,"totalTokens":)");
    AppendJsonInt(out, static_cast<int64_t>(u.tokens));
    out->append(R"(,"user":)");
    AppendJsonString(out, u.user);
    out->push_back('}');
  }
  out->append("]}");
}

}  // namespace

std::string RenderRequests(query::RequestsMetric metric, const query::RequestsResult& r) {
  using M = query::RequestsMetric;
  std::string out;
  if (metric == M::kAgentUsagePerUser) {
    RenderAgentUsage(r.usage, &out);
    return out;
  }
  out.reserve(64 + r.top.size() * 64 + r.days.size() * 72);
  JsonWriter w(&out);
  w.BeginObject();
  auto ranked = [&](const char* list, const char* label, const char* value, bool value_first) {
    w.Key(list).BeginArray();
    for (const query::RankedRow& row : r.top) {
      w.BeginObject();
      if (value_first) {
        w.Key(value).Int(static_cast<int64_t>(row.value));
      }
      w.Key(label).String(row.label);
      if (!value_first) {
        w.Key(value).Int(static_cast<int64_t>(row.value));
      }
      w.EndObject();
    }
    w.EndArray();
  };
  switch (metric) {
    case M::kTotalActiveUsers:
      w.Key("totalActiveUsers").Int(static_cast<int64_t>(r.count));
      break;
    case M::kTotalActiveProjects:
      w.Key("totalActiveProjects").Int(static_cast<int64_t>(r.count));
      break;
    case M::kTotalActiveAgents:
      w.Key("totalActiveAgents").Int(static_cast<int64_t>(r.count));
      break;
    case M::kAverageRequestsPerDay:
      w.Key("averageRequests").Double(r.average);
      break;
    case M::kAverageUsersPerProject:
    case M::kAverageUsersPerAgent:
      w.Key("averageUsers").Double(r.average);
      break;
    case M::kTop10AgentsByRequests:
      ranked("top10Agents", "agent", "totalRequests", false);
      break;
    case M::kTop10AgentsByTokens:
      ranked("top10Agents", "agent", "totalTokens", false);
      break;
    case M::kTop10UsersByRequests:
      ranked("top10Users", "user", "totalRequests", true);
      break;
    case M::kTotalRequestsPerDay:
      w.Key("totalRequestsPerDay").BeginArray();
      for (const query::DayRow& d : r.days) {
        w.BeginObject();
        w.Key("date").String(FormatDay(d.day));
        w.Key("totalRequests").Int(static_cast<int64_t>(d.requests));
        w.Key("totalRequestsWithError").Int(static_cast<int64_t>(d.errors));
        w.EndObject();
      }
      w.EndArray();
      break;
    case M::kAgentUsagePerUser:  // rendered above
      break;
  }
  w.EndObject();
  return out;
}

}  // namespace tally::http
