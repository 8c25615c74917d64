#include "query/superagents.h"

#include <algorithm>
#include <unordered_map>

#include "query/range.h"
#include "store/store.h"

namespace tally::query {
namespace {

using event::EntityKind;
using store::Counters;
using store::Scope;

struct Credits {
  double message = 0;
  double integration = 0;
};

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `needle` must already be lower case.
bool ContainsFolded(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (hay.size() < needle.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() && Lower(hay[i + j]) == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

bool VisibilityMatches(VisibilityFilter f, std::string_view v) {
  switch (f) {
    case VisibilityFilter::kAny:
      return true;
    case VisibilityFilter::kPrivate:
      return v == "private";
    case VisibilityFilter::kWorkspace:
      return v == "workspace";
    case VisibilityFilter::kPublicWithLogin:
      return v == "public_with_login";
    case VisibilityFilter::kPublicWithoutLogin:
      return v == "public_without_login";
    case VisibilityFilter::kPublic:
      return v == "public_with_login" || v == "public_without_login";
  }
  return false;
}

// <0, 0, >0 on the sort field only (ascending sense).
int CompareField(SuperagentSortField f, const SuperagentRow& a, const SuperagentRow& b) {
  auto cmp_num = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  auto cmp_opt = [](const std::optional<std::string>& x, const std::optional<std::string>& y) {
    std::string_view xs = x ? std::string_view(*x) : std::string_view();
    std::string_view ys = y ? std::string_view(*y) : std::string_view();
    return xs.compare(ys);
  };
  switch (f) {
    case SuperagentSortField::kName:
      return cmp_opt(a.superagent_name, b.superagent_name);
    case SuperagentSortField::kCreatedAt:
      return cmp_num(a.created_at_ms, b.created_at_ms);
    case SuperagentSortField::kCreatedByEmail:
      return cmp_opt(a.created_by_email, b.created_by_email);
    case SuperagentSortField::kOwnerUserId:
      return a.owner_user_id.compare(b.owner_user_id);
    case SuperagentSortField::kActiveUsers:
      return cmp_num(a.active_users_last_30d, b.active_users_last_30d);
    case SuperagentSortField::kMessageCredits:
      return cmp_num(a.message_credits_consumed, b.message_credits_consumed);
    case SuperagentSortField::kIntegrationCredits:
      return cmp_num(a.integration_credits_consumed, b.integration_credits_consumed);
    case SuperagentSortField::kTotalCredits:
      return cmp_num(a.total_credits_consumed, b.total_credits_consumed);
  }
  return 0;
}

}  // namespace

Result<SuperagentsResult> ListSuperagents(const store::Store& store, const Clock& clock,
                                          const SuperagentsRequest& req) {
  if (req.from.has_value() != req.to.has_value()) {
    return req.from ? Fail(ErrorCode::kInvalidArgument,
                           "The to field is required when from is present.", "to")
                    : Fail(ErrorCode::kInvalidArgument,
                           "The from field is required when to is present.", "from");
  }
  if (req.search.size() > kSuperagentsMaxSearch) {
    return Fail(ErrorCode::kInvalidArgument,
                "The search field must not be greater than 100 characters.", "search");
  }
  SuperagentsResult out;
  const DayNumber today = clock.Today();
  if (req.from) {
    out.from = *req.from;
    out.to = *req.to;
  } else {
    const CivilDate c = CivilFromDays(today);
    out.from = DaysFromCivil(c.year, c.month, 1);
    out.to = today;
  }
  if (out.from > out.to) {
    return Fail(ErrorCode::kInvalidArgument, "The to field must be a date after or equal to from.",
                "to");
  }
  if (out.to - out.from + 1 > kSuperagentsMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kSuperagentsMaxDays) + " days.",
        "from");
  }

  std::string needle(req.search);
  for (char& c : needle) c = Lower(c);

  auto view = store.NewReadView();
  const std::string& ws = req.workspace_id;
  std::string key;

  // 1. Live agents passing the visibility filter, with their creator.
  struct Candidate {
    SuperagentRow row;
    std::string created_by;
  };
  std::vector<Candidate> agents;
  std::string prefix;
  store::EntityPrefix(ws, EntityKind::kAgent, &prefix);
  view->ScanRecords(prefix, [&](std::string_view k, const store::Record& r) {
    const store::Field* created = store::FindField(r, store::field::kEntityCreated);
    if (!created) return true;
    const store::Field* deleted = store::FindField(r, store::field::kEntityDeleted);
    const store::Field* revived = store::FindField(r, store::field::kEntityRevived);
    if (deleted && !(revived && revived->time_ms > deleted->time_ms)) return true;
    const store::Field* vis = store::FindField(r, store::field::kEntityVisibility);
    if (!VisibilityMatches(req.visibility, vis ? std::string_view(vis->value) : "")) return true;
    std::string_view rest = k.substr(prefix.size());
    std::string_view id;
    if (!store::GetLengthPrefixed(&rest, &id) || !rest.empty()) return true;
    Candidate c;
    c.row.superagent_id.assign(id);
    if (const store::Field* n = store::FindField(r, store::field::kEntityName);
        n && !n->value.empty()) {
      c.row.superagent_name = n->value;
    }
    const store::Field* owner = store::FindField(r, store::field::kEntityOwner);
    c.row.owner_user_id = owner && !owner->value.empty() ? owner->value : created->value;
    c.row.created_at_ms = created->time_ms;
    c.created_by = created->value;
    agents.push_back(std::move(c));
    return true;
  });

  // 2. Creator emails (one profile read per distinct creator), then the search filter.
  std::unordered_map<std::string, std::optional<std::string>> emails;
  std::vector<SuperagentRow> rows;
  rows.reserve(agents.size());
  for (Candidate& c : agents) {
    auto [it, inserted] = emails.try_emplace(c.created_by);
    if (inserted) {
      store::UserProfileKey(ws, c.created_by, &key);
      store::Record profile;
      if (view->GetRecord(key, &profile)) {
        const store::Field* e = store::FindField(profile, store::field::kUserEmail);
        if (e && !e->value.empty()) it->second = e->value;
      }
    }
    c.row.created_by_email = it->second;
    if (!needle.empty() &&
        !(c.row.superagent_name && ContainsFolded(*c.row.superagent_name, needle)) &&
        !(c.row.created_by_email && ContainsFolded(*c.row.created_by_email, needle))) {
      continue;
    }
    rows.push_back(std::move(c.row));
  }
  agents.clear();
  if (rows.empty()) return out;

  // 3. Credits over [from, to]: one scan per bucket of every agent's counters.
  std::unordered_map<std::string, Credits> credits;
  for (const BucketRef& b : DecomposeRange(out.from, out.to)) {
    store::CounterBucketPrefix(Scope::kEntity, ws, b.granularity, b.bucket, &key);
    view->ScanCounters(key, [&](std::string_view rest, const Counters& c) {
      EntityKind kind;
      std::string_view id;
      if (!store::DecodeScopeIdEntity(rest, &kind, &id) || kind != EntityKind::kAgent) return;
      const double m = c.d[Counters::kAgentMessageCredits];
      const double i = c.d[Counters::kAgentIntegrationCredits];
      if (m == 0 && i == 0) return;
      Credits& cr = credits[std::string(id)];
      cr.message += m;
      cr.integration += i;
    });
  }

  // 4. Active users of the last 30 days, per listed agent.
  const std::vector<BucketRef> last30 = DecomposeRange(today - 29, today);
  std::string extra;
  for (SuperagentRow& row : rows) {
    if (auto it = credits.find(row.superagent_id); it != credits.end()) {
      row.message_credits_consumed = it->second.message;
      row.integration_credits_consumed = it->second.integration;
      row.total_credits_consumed = it->second.message + it->second.integration;
    }
    store::ScopeIdEntity(EntityKind::kAgent, row.superagent_id, &extra);
    store::UserBitmap users;
    for (const BucketRef& b : last30) {
      store::BitmapKey(Scope::kEntity, ws, b.granularity, b.bucket, extra, &key);
      view->OrBitmap(key, &users);
    }
    row.active_users_last_30d = static_cast<int64_t>(users.Cardinality());
  }

  const SuperagentSort sort = req.sort;
  std::sort(rows.begin(), rows.end(), [sort](const SuperagentRow& a, const SuperagentRow& b) {
    int c = CompareField(sort.field, a, b);
    if (c != 0) return sort.descending ? c > 0 : c < 0;
    return a.superagent_id < b.superagent_id;
  });
  out.rows = std::move(rows);
  return out;
}

}  // namespace tally::query
