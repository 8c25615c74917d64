#include "http/workspace_metrics_request.h"

#include <simdjson.h>

#include <array>
#include <cmath>
#include <optional>

#include "http/internal/query_params.h"

namespace tally::http {
namespace {

using query::Aggregation;
using query::GroupBy;
using query::Metric;
using query::OrderBy;
using query::Period;

// One input value, from the body or the query string, before validation.
struct Raw {
  enum Kind { kAbsent, kNull, kString, kInt, kDouble, kBool, kOther };
  Kind kind = kAbsent;
  std::string text;  // kString: the value; kInt: its decimal digits
  int64_t int_value = 0;
  bool int_in_range = true;  // false for integers beyond int64
  double double_value = 0;

  bool missing() const { return kind == kAbsent || kind == kNull; }
};

Raw FromText(std::string_view s) {
  Raw r;
  if (s.empty()) {
    r.kind = Raw::kNull;  // ConvertEmptyStringsToNull
  } else {
    r.kind = Raw::kString;
    r.text.assign(s);
  }
  return r;
}

Raw OtherRaw() {
  Raw r;
  r.kind = Raw::kOther;
  return r;
}

Raw FromElement(simdjson::dom::element e) {
  Raw r;
  switch (e.type()) {
    case simdjson::dom::element_type::NULL_VALUE:
      r.kind = Raw::kNull;
      break;
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s)) {
        r.kind = Raw::kOther;
      } else {
        r = FromText(s);
      }
      break;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t v = 0;
      if (e.get_int64().get(v)) return OtherRaw();
      r.kind = Raw::kInt;
      r.int_value = v;
      r.text = std::to_string(v);
      break;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t v = 0;
      if (e.get_uint64().get(v)) return OtherRaw();
      r.kind = Raw::kInt;
      r.int_value = INT64_MAX;
      r.int_in_range = false;
      r.text = std::to_string(v);
      break;
    }
    case simdjson::dom::element_type::DOUBLE: {
      double v = 0;
      if (e.get_double().get(v)) return OtherRaw();
      // An integral JSON number written as 10.0 is an integer for Laravel's `integer` rule.
      if (std::isfinite(v) && std::trunc(v) == v && std::fabs(v) <= 9007199254740992.0) {
        r.kind = Raw::kInt;
        r.int_value = static_cast<int64_t>(v);
        r.text = std::to_string(r.int_value);
      } else {
        r.kind = Raw::kDouble;
        r.double_value = v;
      }
      break;
    }
    case simdjson::dom::element_type::BOOL:
      r.kind = Raw::kBool;
      break;
    default:
      r.kind = Raw::kOther;
      break;
  }
  return r;
}

// Laravel's display name of an attribute: underscores become spaces.
std::string Display(std::string_view field) {
  std::string out(field);
  for (char& c : out) {
    if (c == '_') c = ' ';
  }
  return out;
}

std::string Required(std::string_view field) {
  return "The " + Display(field) + " field is required.";
}
std::string Invalid(std::string_view field) {
  return "The selected " + Display(field) + " is invalid.";
}

template <typename E, size_t N>
std::optional<E> Lookup(const std::array<std::pair<std::string_view, E>, N>& table,
                        const Raw& raw) {
  if (raw.kind != Raw::kString) return std::nullopt;
  for (const auto& [name, value] : table) {
    if (name == raw.text) return value;
  }
  return std::nullopt;
}

constexpr std::array<std::pair<std::string_view, event::EntityKind>, 2> kEntities = {{
    {"agents", event::EntityKind::kAgent},
    {"workflows", event::EntityKind::kWorkflow},
}};
constexpr std::array<std::pair<std::string_view, Metric>, 5> kMetrics = {{
    {"executions", Metric::kExecutions},
    {"created", Metric::kCreated},
    {"copies", Metric::kCopies},
    {"shares", Metric::kShares},
    {"avg_duration", Metric::kAvgDuration},
}};
constexpr std::array<std::pair<std::string_view, Aggregation>, 3> kAggregations = {{
    {"count", Aggregation::kCount},
    {"sum", Aggregation::kSum},
    {"avg", Aggregation::kAvg},
}};
constexpr std::array<std::pair<std::string_view, GroupBy>, 2> kGroupBys = {{
    {"user", GroupBy::kUser},
    {"date", GroupBy::kDate},
}};
constexpr std::array<std::pair<std::string_view, Granularity>, 3> kGranularities = {{
    {"daily", Granularity::kDay},
    {"weekly", Granularity::kWeek},
    {"monthly", Granularity::kMonth},
}};
constexpr std::array<std::pair<std::string_view, Period>, 4> kPeriods = {{
    {"7d", Period::k7d},
    {"30d", Period::k30d},
    {"90d", Period::k90d},
    {"all", Period::kAll},
}};
constexpr std::array<std::pair<std::string_view, OrderBy>, 3> kOrderBys = {{
    {"value", OrderBy::kValue},
    {"name", OrderBy::kName},
    {"date", OrderBy::kDate},
}};
constexpr std::array<std::pair<std::string_view, bool>, 2> kOrderDirs = {{
    {"asc", false},
    {"desc", true},
}};

// Integer value of `raw` for the `integer` rule: JSON integers and strings of digits.
std::optional<int64_t> AsInteger(const Raw& raw) {
  if (raw.kind == Raw::kInt) {
    if (!raw.int_in_range) return INT64_MAX;
    return raw.int_value;
  }
  if (raw.kind != Raw::kString) return std::nullopt;
  return internal::ParseIntegerRule(raw.text);
}

struct Inputs {
  Raw workspace_uuid, entity, metric, aggregation, group_by, granularity, filters, period, user_id,
      order_by, order_dir, limit;
};

void ReadQuery(const StringPairs& query, Inputs* in) {
  // Repeated keys: the last one wins (as PHP does for non-array keys). filters[x] wins over x.
  bool period_from_filters = false;
  bool user_from_filters = false;
  for (const auto& [k, v] : query) {
    if (k == "workspace_uuid")
      in->workspace_uuid = FromText(v);
    else if (k == "entity")
      in->entity = FromText(v);
    else if (k == "metric")
      in->metric = FromText(v);
    else if (k == "aggregation")
      in->aggregation = FromText(v);
    else if (k == "group_by")
      in->group_by = FromText(v);
    else if (k == "granularity")
      in->granularity = FromText(v);
    else if (k == "order_by")
      in->order_by = FromText(v);
    else if (k == "order_dir")
      in->order_dir = FromText(v);
    else if (k == "limit")
      in->limit = FromText(v);
    else if (k == "filters[period]") {
      in->period = FromText(v);
      period_from_filters = true;
    } else if (k == "period" && !period_from_filters) {
      in->period = FromText(v);
    } else if (k == "filters[user_id]") {
      in->user_id = FromText(v);
      user_from_filters = true;
    } else if (k == "user_id" && !user_from_filters) {
      in->user_id = FromText(v);
    }
  }
}

// Overrides `in` with every field the body carries. The error of an unusable body otherwise.
std::optional<FieldError> ReadBody(std::string_view body, Inputs* in) {
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return std::nullopt;  // no body: query parameters only
  const FieldError not_object{"body", "The request body must be a JSON object."};
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size(), true).get(doc)) {
    if (err == simdjson::NUMBER_ERROR) {
      return FieldError{
          "body",
          "The request body contains a number that is malformed or does not fit in 64 bits."};
    }
    return not_object;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return not_object;
  auto take = [&obj](std::string_view key, Raw* out) {
    simdjson::dom::element e;
    if (!obj[key].get(e)) *out = FromElement(e);
  };
  take("workspace_uuid", &in->workspace_uuid);
  take("entity", &in->entity);
  take("metric", &in->metric);
  take("aggregation", &in->aggregation);
  take("group_by", &in->group_by);
  take("granularity", &in->granularity);
  take("order_by", &in->order_by);
  take("order_dir", &in->order_dir);
  take("limit", &in->limit);
  take("period", &in->period);
  take("user_id", &in->user_id);
  simdjson::dom::element filters;
  if (!obj["filters"].get(filters)) {
    in->filters = FromElement(filters);
    simdjson::dom::object f;
    if (!filters.get_object().get(f)) {
      simdjson::dom::element e;
      if (!f["period"].get(e)) in->period = FromElement(e);
      if (!f["user_id"].get(e)) in->user_id = FromElement(e);
    }
  }
  return std::nullopt;
}

// What is asked (workspace_uuid, entity, metric, aggregation, group_by, granularity) into `out`;
// each invalid field appends its error. Returns the group_by asked (nullopt if invalid).
std::optional<GroupBy> ReadSubject(Inputs& in, query::WorkspaceMetricsRequest* out_ptr,
                                   FieldErrors* errors) {
  query::WorkspaceMetricsRequest& out = *out_ptr;
  auto fail = [errors](std::string_view field, std::string message) {
    errors->push_back(FieldError{std::string(field), std::move(message)});
  };

  // workspace_uuid
  if (in.workspace_uuid.missing()) {
    fail("workspace_uuid", Required("workspace_uuid"));
  } else if (in.workspace_uuid.kind != Raw::kString) {
    fail("workspace_uuid", "The workspace uuid field must be a string.");
  } else if (in.workspace_uuid.text.size() > internal::kMaxStringLength) {
    fail("workspace_uuid", "The workspace uuid field must not be greater than 255 characters.");
  } else {
    out.workspace_id = std::move(in.workspace_uuid.text);
  }

  // entity
  std::optional<event::EntityKind> entity;
  if (in.entity.missing()) {
    fail("entity", Required("entity"));
  } else if (!(entity = Lookup(kEntities, in.entity))) {
    fail("entity", Invalid("entity"));
  } else {
    out.entity = *entity;
  }

  // metric
  std::optional<Metric> metric;
  if (in.metric.missing()) {
    fail("metric", Required("metric"));
  } else if (!(metric = Lookup(kMetrics, in.metric))) {
    fail("metric", Invalid("metric"));
  } else if (*metric == Metric::kAvgDuration && entity == event::EntityKind::kAgent) {
    fail("metric", "The avg_duration metric is only available for workflows.");
  } else {
    out.metric = *metric;
  }

  // aggregation
  if (in.aggregation.missing()) {
    fail("aggregation", Required("aggregation"));
  } else if (auto a = Lookup(kAggregations, in.aggregation)) {
    out.aggregation = *a;
  } else {
    fail("aggregation", Invalid("aggregation"));
  }

  // group_by
  std::optional<GroupBy> group_by = GroupBy::kNone;
  if (!in.group_by.missing()) {
    group_by = Lookup(kGroupBys, in.group_by);
    if (!group_by) {
      fail("group_by", Invalid("group_by"));
    } else if (metric == Metric::kAvgDuration) {
      fail("group_by", "The avg_duration metric does not support group_by.");
    } else {
      out.group_by = *group_by;
    }
  }

  // granularity
  if (in.granularity.missing()) {
    if (group_by == GroupBy::kDate) {
      fail("granularity", "The granularity field is required when group by is date.");
    }
  } else if (auto g = Lookup(kGranularities, in.granularity)) {
    out.granularity = *g;
  } else {
    fail("granularity", Invalid("granularity"));
  }
  return group_by;
}

// The filters and the order (filters, filters.period, filters.user_id, order_by, order_dir,
// limit) into `out`, given the group_by asked; each invalid field appends its error.
void ReadFiltersAndOrder(Inputs& in, std::optional<GroupBy> group_by,
                         query::WorkspaceMetricsRequest* out_ptr, FieldErrors* errors) {
  query::WorkspaceMetricsRequest& out = *out_ptr;
  auto fail = [errors](std::string_view field, std::string message) {
    errors->push_back(FieldError{std::string(field), std::move(message)});
  };

  // filters
  if (in.filters.kind != Raw::kAbsent && in.filters.kind != Raw::kNull &&
      in.filters.kind != Raw::kOther) {
    fail("filters", "The filters field must be an array.");
  }

  // filters.period
  if (!in.period.missing()) {
    if (auto p = Lookup(kPeriods, in.period)) {
      out.period = *p;
    } else {
      fail("filters.period", Invalid("filters.period"));
    }
  }

  // filters.user_id
  if (!in.user_id.missing()) {
    if (in.user_id.kind != Raw::kString && in.user_id.kind != Raw::kInt) {
      fail("filters.user_id", "The filters.user id field must be a string or an integer.");
    } else if (in.user_id.text.size() > internal::kMaxStringLength) {
      fail("filters.user_id", "The filters.user id field must not be greater than 255 characters.");
    } else {
      out.user_id = std::move(in.user_id.text);
    }
  }

  // order_by
  if (!in.order_by.missing()) {
    auto o = Lookup(kOrderBys, in.order_by);
    if (!o) {
      fail("order_by", Invalid("order_by"));
    } else if (*o == OrderBy::kName && group_by != GroupBy::kUser) {
      fail("order_by", "Ordering by name is only available when group by is user.");
    } else if (*o == OrderBy::kDate && group_by != GroupBy::kDate) {
      fail("order_by", "Ordering by date is only available when group by is date.");
    } else {
      out.order_by = *o;
    }
  }

  // order_dir
  if (!in.order_dir.missing()) {
    if (auto d = Lookup(kOrderDirs, in.order_dir)) {
      out.descending = *d;
    } else {
      fail("order_dir", Invalid("order_dir"));
    }
  }

  // limit
  if (!in.limit.missing()) {
    std::optional<int64_t> v = AsInteger(in.limit);
    if (!v) {
      fail("limit", "The limit field must be an integer.");
    } else if (*v < 1 || *v > 100) {
      fail("limit", "The limit field must be between 1 and 100.");
    } else {
      out.limit = static_cast<int>(*v);
    }
  }
}

}  // namespace

std::expected<query::WorkspaceMetricsRequest, FieldErrors> ParseWorkspaceMetricsRequest(
    std::string_view body, const StringPairs& query) {
  Inputs in;
  ReadQuery(query, &in);
  if (std::optional<FieldError> bad_body = ReadBody(body, &in)) {
    return std::unexpected(FieldErrors{std::move(*bad_body)});
  }

  query::WorkspaceMetricsRequest out;
  FieldErrors errors;
  const std::optional<GroupBy> group_by = ReadSubject(in, &out, &errors);
  ReadFiltersAndOrder(in, group_by, &out, &errors);
  if (!errors.empty()) return std::unexpected(std::move(errors));
  return out;
}

std::string CanonicalCacheKey(const query::WorkspaceMetricsRequest& r) {
  std::string key;
  key.reserve(48 + r.workspace_id.size() + (r.user_id ? r.user_id->size() : 0));
  key += std::to_string(r.workspace_id.size());
  key += ':';
  key += r.workspace_id;
  auto add = [&key](int v) {
    key += '|';
    key += std::to_string(v);
  };
  add(static_cast<int>(r.entity));
  add(static_cast<int>(r.metric));
  add(static_cast<int>(r.aggregation));
  add(static_cast<int>(r.group_by));
  add(r.granularity ? static_cast<int>(*r.granularity) : -1);
  add(static_cast<int>(r.period));
  add(r.order_by ? static_cast<int>(*r.order_by) : -1);
  add(r.descending ? static_cast<int>(*r.descending) : -1);
  add(r.limit);
  key += '|';
  if (r.user_id) {
    key += std::to_string(r.user_id->size());
    key += ':';
    key += *r.user_id;
  } else {
    key += '-';
  }
  return key;
}

const char* EntityApiName(event::EntityKind entity) {
  return entity == event::EntityKind::kWorkflow ? "workflows" : "agents";
}

const char* MetricApiName(Metric metric) {
  for (const auto& [name, value] : kMetrics) {
    if (value == metric) return name.data();
  }
  return "executions";
}

const char* AggregationApiName(Aggregation aggregation) {
  for (const auto& [name, value] : kAggregations) {
    if (value == aggregation) return name.data();
  }
  return "count";
}

const char* GroupByApiName(GroupBy group_by) {
  for (const auto& [name, value] : kGroupBys) {
    if (value == group_by) return name.data();
  }
  return nullptr;
}

const char* GranularityApiName(Granularity granularity) {
  for (const auto& [name, value] : kGranularities) {
    if (value == granularity) return name.data();
  }
  return "daily";
}

const char* PeriodApiName(Period period) {
  for (const auto& [name, value] : kPeriods) {
    if (value == period) return name.data();
  }
  return "30d";
}

}  // namespace tally::http
