#include "query/requests.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>

#include "common/saturating.h"
#include "query/internal/rank_sort.h"
#include "query/internal/requests_reader.h"
#include "query/range.h"
#include "store/bitmap.h"
#include "store/codec.h"
#include "store/directory.h"
#include "store/store.h"

namespace tally::query {
namespace {

using store::kAllAgents;

// Per-index accumulators reused across requests on one thread: a generation stamp marks the
// entries of the current request, so nothing is cleared or reallocated per request.
struct Accumulator {
  struct Entry {
    uint32_t stamp = 0;
    uint64_t requests = 0;
    uint64_t tokens = 0;
    int64_t cost_nanos = 0;
  };
  std::vector<Entry> entries;
  std::vector<uint32_t> touched;
  uint32_t generation = 0;

  void Begin() {
    touched.clear();
    if (++generation == 0) {  // wrapped: old stamps could collide
      for (Entry& e : entries) e.stamp = 0;
      generation = 1;
    }
  }
  Entry& At(uint32_t index) {
    if (index >= entries.size()) entries.resize(std::max<size_t>(index + 1, entries.size() * 2));
    Entry& e = entries[index];
    if (e.stamp != generation) {
      e = Entry{generation, 0, 0, 0};
      touched.push_back(index);
    }
    return e;
  }
};

thread_local Accumulator tl_users;
thread_local Accumulator tl_agents;

// One request's plan: the (organization, agent selector) pairs and buckets to read.
class Plan {
 public:
  Plan(const store::Store& store, const store::Directory& directory, const RequestsQuery& q)
      : view_(store.NewReadView()), q_(q), buckets_(DecomposeRange(q.start, q.end)) {
    orgs_ = q.organizations;
    std::sort(orgs_.begin(), orgs_.end());
    orgs_.erase(std::unique(orgs_.begin(), orgs_.end()), orgs_.end());
    if (q.project_id) project_ = *q.project_id;
    if (q.agent_name) {
      store::Directory::Reader r(directory);
      if (const std::vector<uint32_t>* named = r.AgentsNamed(*q.agent_name)) agents_ = *named;
    } else {
      agents_ = {kAllAgents};
    }
  }

  const std::vector<std::string>& orgs() const { return orgs_; }
  const std::vector<uint32_t>& agents() const { return agents_; }
  const std::vector<BucketRef>& buckets() const { return buckets_; }
  bool filtered() const { return q_.agent_name.has_value(); }
  const std::string_view* project() const { return q_.project_id ? &project_ : nullptr; }
  const store::ReadView& view() const { return *view_; }

  // fn(org, agent selector, slice part) for every part of every slice of the scope in the
  // range (store::ReadView::ReadSliceParts): fn must sum what it reads, as an index may come in
  // two parts of one slice.
  template <typename Fn>
  void ForEachSlice(Fn fn) const {
    std::string key;
    for (const std::string& org : orgs_) {
      for (uint32_t agent : agents_) {
        for (const BucketRef& b : buckets_) {
          store::RequestsSliceKey(org, agent, project(), b.granularity, b.bucket, &key);
          view_->ReadSliceParts(key, [&](const store::SliceView& s) { fn(org, agent, s); });
        }
      }
    }
  }

  // Unions the users bitmaps of (org, agent selector, project selector) over the range.
  void OrUsers(std::string_view org, uint32_t agent, const std::string_view* project,
               store::UserBitmap* out) const {
    std::string key;
    for (const BucketRef& b : buckets_) {
      store::RequestsUsersKey(org, agent, project, b.granularity, b.bucket, &key);
      view_->OrBitmap(key, out);
    }
  }

  // The projects with slices under (org, agent selector), in key order (any bucket).
  std::vector<std::string> ProjectsOf(std::string_view org, uint32_t agent) const {
    return internal::ListProjects(*view_, org, agent);
  }

  // The project header's project, or every project with slices under (org, agent selector).
  std::vector<std::string> ScopeProjects(std::string_view org, uint32_t agent) const {
    if (project()) return {std::string(*project())};
    return ProjectsOf(org, agent);
  }

  // True if (org, agent selector, project) has a request in the range.
  bool ProjectActive(std::string_view org, uint32_t agent, std::string_view project) const {
    std::string key;
    bool active = false;
    for (const BucketRef& b : buckets_) {
      store::RequestsSliceKey(org, agent, &project, b.granularity, b.bucket, &key);
      view_->ReadSliceParts(key, [&](const store::SliceView& s) {
        if (s.totals().requests > 0) active = true;
      });
      if (active) return true;
    }
    return false;
  }

 private:
  std::unique_ptr<store::ReadView> view_;
  const RequestsQuery& q_;
  std::vector<BucketRef> buckets_;
  std::vector<std::string> orgs_;
  std::vector<uint32_t> agents_;
  std::string_view project_;
};

// Active agents of the scope, accumulated into tl_agents (requests and tokens per agent).
void AccumulateAgents(const Plan& plan) {
  Accumulator& acc = tl_agents;
  acc.Begin();
  plan.ForEachSlice([&](std::string_view, uint32_t agent, const store::SliceView& s) {
    if (agent != kAllAgents) {
      if (s.totals().requests == 0) return;
      Accumulator::Entry& e = acc.At(agent);
      SatAddTo(&e.requests, s.totals().requests);
      SatAddTo(&e.tokens, s.totals().tokens);
      return;
    }
    for (size_t i = 0; i < s.agent_count(); ++i) {
      store::SliceAgent a = s.agent(i);
      Accumulator::Entry& e = acc.At(a.agent);
      SatAddTo(&e.requests, a.requests);
      SatAddTo(&e.tokens, a.tokens);
    }
  });
}

void AccumulateUsers(const Plan& plan) {
  Accumulator& acc = tl_users;
  acc.Begin();
  plan.ForEachSlice([&](std::string_view, uint32_t, const store::SliceView& s) {
    for (size_t i = 0; i < s.user_count(); ++i) {
      store::SliceUser u = s.user(i);
      Accumulator::Entry& e = acc.At(u.user);
      SatAddTo(&e.requests, u.requests);
      SatAddTo(&e.tokens, u.tokens);
      SatAddTo(&e.cost_nanos, u.cost_nanos);
    }
  });
}

uint64_t CountActive(const Accumulator& acc) {
  uint64_t n = 0;
  for (uint32_t i : acc.touched) n += acc.entries[i].requests > 0 ? 1 : 0;
  return n;
}

// Every active project of the scope: ((org, project) -> union of its users).
std::map<std::pair<std::string, std::string>, store::UserBitmap> ProjectUsers(const Plan& plan) {
  std::map<std::pair<std::string, std::string>, store::UserBitmap> out;
  for (const std::string& org : plan.orgs()) {
    for (uint32_t agent : plan.agents()) {
      const std::vector<std::string> projects = plan.ScopeProjects(org, agent);
      for (const std::string& p : projects) {
        store::UserBitmap users;
        std::string_view pv = p;
        plan.OrUsers(org, agent, &pv, &users);
        if (users.IsEmpty()) continue;
        out[{org, p}].Or(users);
      }
    }
  }
  return out;
}

// Over the active projects of the scope: (sum of their distinct users, their number), the
// same numbers as ProjectUsers. A project is (org, project id); its users are the union of its
// users bitmaps over every agent selector and bucket. All the bitmaps are read with one
// MultiGet and each project's union is computed once (RequestsReader), instead of one point
// read and one eager OR per bitmap: for every project of whole organizations (hundreds of
// bitmaps) that is 1.4x faster; for one project or one named agent's few projects, the reader's
// own snapshot, iterator and batch cost more than they save, so those use ProjectUsers (the
// caller picks: this one serves neither a project header nor an agent filter).
std::pair<uint64_t, uint64_t> ProjectUserSums(const store::Store& store, const Plan& plan) {
  internal::RequestsReader reader(store);
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> keys;
  for (const std::string& org : plan.orgs()) {
    for (uint32_t agent : plan.agents()) {
      for (const std::string& p : reader.ProjectsOf(org, agent)) {
        std::vector<std::string>& k = keys[{org, p}];
        const std::string_view pv = p;
        for (const BucketRef& b : plan.buckets()) {
          store::RequestsUsersKey(org, agent, &pv, b.granularity, b.bucket, &k.emplace_back());
        }
      }
    }
  }
  std::vector<std::vector<std::string>> groups;
  groups.reserve(keys.size());
  for (auto& [project, k] : keys) groups.push_back(std::move(k));
  uint64_t sum = 0, n = 0;
  for (uint64_t users : reader.UnionCardinalities(groups)) {
    if (users == 0) continue;
    sum += users;
    ++n;
  }
  return {sum, n};
}

uint64_t ActiveProjects(const Plan& plan) {
  std::vector<std::pair<std::string, std::string>> active;
  for (const std::string& org : plan.orgs()) {
    for (uint32_t agent : plan.agents()) {
      const std::vector<std::string> projects = plan.ScopeProjects(org, agent);
      for (const std::string& p : projects) {
        if (plan.ProjectActive(org, agent, p)) active.emplace_back(org, p);
      }
    }
  }
  std::sort(active.begin(), active.end());
  return static_cast<uint64_t>(std::unique(active.begin(), active.end()) - active.begin());
}

// A row of a full ranking: its value, label and accumulator index.
struct RankKey {
  uint64_t value;
  uint64_t prefix;  // the label's first 8 bytes, big-endian, zero-padded: orders like the label
  std::string_view label;
  uint32_t index;
};

// The first 8 bytes of `s` as a big-endian number (missing bytes 0): a < b on these implies
// a < b on the strings (byte order), equal prefixes need the full comparison.
inline uint64_t LabelPrefix(std::string_view s) {
  unsigned char b[8] = {};
  if (!s.empty()) std::memcpy(b, s.data(), std::min<size_t>(s.size(), 8));
  uint64_t p = 0;
  for (unsigned char c : b) p = (p << 8) | c;  // compiles to a load and a byte swap
  return p;
}

// Every active entry of `acc` ranked by `value` descending, ties by label then id ascending.
// The sort keys are gathered once into one array, so comparisons cost no accumulator or
// directory lookups; values are ordered by a radix sort (internal/rank_sort.h) and only rows
// with equal values are compared, most of them settled by the 8-byte label prefix
// (agent-usage-per-user ranks thousands of users, many of them tied on small values).
template <typename Value, typename Label, typename Id>
std::vector<RankKey> RankAll(const Accumulator& acc, Value value, Label label, Id id) {
  std::vector<RankKey> keys;
  keys.reserve(acc.touched.size());
  for (uint32_t i : acc.touched) {
    const Accumulator::Entry& e = acc.entries[i];
    if (e.requests == 0) continue;
    const std::string_view l = label(i);
    keys.push_back({value(e), LabelPrefix(l), l, i});
  }
  internal::SortByValueDescending(
      &keys, [](const RankKey& k) { return k.value; },
      [&](const RankKey& a, const RankKey& b) {
        if (a.prefix != b.prefix) return a.prefix < b.prefix;
        if (a.label != b.label) return a.label < b.label;
        return id(a.index) < id(b.index);
      });
  return keys;
}

// The top `limit` entries of `acc` by `value`, ties by label then id.
template <typename Value, typename Label, typename Id>
std::vector<uint32_t> TopIndexes(const Accumulator& acc, size_t limit, Value value, Label label,
                                 Id id) {
  size_t active = 0;
  for (uint32_t i : acc.touched) active += acc.entries[i].requests > 0 ? 1 : 0;
  std::vector<uint32_t> idx;
  if (limit >= active) {
    for (const RankKey& k : RankAll(acc, value, label, id)) idx.push_back(k.index);
    return idx;
  }
  // A few rows out of many: most candidates lose on the value alone, so labels are looked up
  // only on ties.
  idx.reserve(active);
  for (uint32_t i : acc.touched)
    if (acc.entries[i].requests > 0) idx.push_back(i);
  auto less = [&](uint32_t a, uint32_t b) {
    uint64_t va = value(acc.entries[a]), vb = value(acc.entries[b]);
    if (va != vb) return va > vb;
    std::string_view la = label(a), lb = label(b);
    if (la != lb) return la < lb;
    return id(a) < id(b);
  };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(limit), idx.end(), less);
  idx.resize(limit);
  return idx;
}

std::vector<RankedRow> TopAgents(const Plan& plan, const store::Directory& dir, bool by_tokens) {
  AccumulateAgents(plan);
  store::Directory::Reader r(dir);
  auto value = [by_tokens](const Accumulator::Entry& e) {
    return by_tokens ? e.tokens : e.requests;
  };
  auto label = [&r](uint32_t i) { return r.AgentName(i); };
  auto id = [&r](uint32_t i) { return r.AgentRef(i); };
  std::vector<RankedRow> out;
  for (uint32_t i : TopIndexes(tl_agents, 10, value, label, id)) {
    out.push_back({std::string(r.AgentName(i)), value(tl_agents.entries[i])});
  }
  return out;
}

}  // namespace

bool OrganizationHasRequests(const store::Store& store, std::string_view organization) {
  std::string prefix;
  store::RequestsOrgPrefix(organization, &prefix);
  return store.NewReadView()->HasSliceWithPrefix(prefix);
}

std::vector<std::string> RequestOrganizations(const store::Store& store) {
  std::vector<std::string> out;
  auto view = store.NewReadView();
  std::string prefix;
  store::RequestsOrgPrefix("", &prefix);
  prefix.resize(1);  // the tag alone
  std::string start = prefix;
  for (;;) {
    bool found = false;
    view->ScanSliceKeys(prefix, start, [&](std::string_view key) {
      std::string_view rest = key.substr(1), org;
      if (store::GetLengthPrefixed(&rest, &org)) {
        out.emplace_back(org);
        found = true;
      }
      return false;
    });
    if (!found) break;
    store::RequestsOrgPrefix(out.back(), &start);
    start.push_back('\xff');
  }
  return out;
}

Result<RequestsResult> RunRequests(const store::Store& store, const store::Directory& directory,
                                   RequestsMetric metric, const RequestsQuery& query) {
  if (query.start > query.end) {
    return Fail(ErrorCode::kInvalidArgument,
                "The endDate must be a date after or equal to startDate.", "endDate");
  }
  const int64_t days = int64_t{query.end} - query.start + 1;
  if (days > kRequestsMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kRequestsMaxDays) + " days.",
        "startDate");
  }
  RequestsResult result;
  Plan plan(store, directory, query);
  if (plan.agents().empty()) {  // no agent currently has that name: nothing matches
    if (metric == RequestsMetric::kTotalRequestsPerDay) {
      for (DayNumber d = query.start; d <= query.end; ++d) result.days.push_back({d, 0, 0});
    }
    return result;
  }

  switch (metric) {
    case RequestsMetric::kTotalActiveUsers: {
      store::UserBitmap users;
      for (const std::string& org : plan.orgs())
        for (uint32_t agent : plan.agents()) plan.OrUsers(org, agent, plan.project(), &users);
      result.count = users.Cardinality();
      break;
    }
    case RequestsMetric::kTotalActiveProjects:
      result.count = ActiveProjects(plan);
      break;
    case RequestsMetric::kTotalActiveAgents:
      AccumulateAgents(plan);
      result.count = CountActive(tl_agents);
      break;
    case RequestsMetric::kAverageRequestsPerDay: {
      uint64_t requests = 0;
      plan.ForEachSlice([&](std::string_view, uint32_t, const store::SliceView& s) {
        SatAddTo(&requests, s.totals().requests);
      });
      result.average = static_cast<double>(requests) / static_cast<double>(days);
      break;
    }
    case RequestsMetric::kAverageUsersPerProject: {
      uint64_t sum = 0, n = 0;
      if (!plan.filtered() && !plan.project()) {
        std::tie(sum, n) = ProjectUserSums(store, plan);
      } else {
        for (auto& [project, users] : ProjectUsers(plan)) {
          sum += users.Cardinality();
          ++n;
        }
      }
      result.average = n ? static_cast<double>(sum) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kAverageUsersPerAgent: {
      uint64_t pairs = 0, n = 0;
      if (!plan.filtered()) {
        // Sum over agents of their distinct users = distinct (agent, user) pairs.
        store::UserBitmap all_pairs;
        std::string key;
        for (const std::string& org : plan.orgs()) {
          for (const BucketRef& b : plan.buckets()) {
            store::RequestsPairsKey(org, plan.project(), b.granularity, b.bucket, &key);
            plan.view().OrBitmap(key, &all_pairs);
          }
        }
        pairs = all_pairs.Cardinality();
        AccumulateAgents(plan);
        n = CountActive(tl_agents);
      } else {
        for (uint32_t agent : plan.agents()) {
          store::UserBitmap users;
          for (const std::string& org : plan.orgs())
            plan.OrUsers(org, agent, plan.project(), &users);
          if (users.IsEmpty()) continue;
          pairs += users.Cardinality();
          ++n;
        }
      }
      result.average = n ? static_cast<double>(pairs) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kTop10AgentsByRequests:
      result.top = TopAgents(plan, directory, /*by_tokens=*/false);
      break;
    case RequestsMetric::kTop10AgentsByTokens:
      result.top = TopAgents(plan, directory, /*by_tokens=*/true);
      break;
    case RequestsMetric::kTop10UsersByRequests: {
      AccumulateUsers(plan);
      store::Directory::Reader r(directory);
      // Emails shown come only from the scope's own organizations' events.
      const std::vector<uint32_t> scope = r.Organizations(plan.orgs());
      auto value = [](const Accumulator::Entry& e) { return e.requests; };
      auto label = [&r, &scope](uint32_t i) { return r.UserLabel(scope, i); };
      auto id = [&r](uint32_t i) { return r.UserId(i); };
      for (uint32_t i : TopIndexes(tl_users, 10, value, label, id)) {
        result.top.push_back({std::string(label(i)), tl_users.entries[i].requests});
      }
      break;
    }
    case RequestsMetric::kAgentUsagePerUser: {
      AccumulateUsers(plan);
      store::Directory::Reader r(directory);
      const std::vector<uint32_t> scope = r.Organizations(plan.orgs());
      auto value = [](const Accumulator::Entry& e) { return e.requests; };
      auto label = [&r, &scope](uint32_t i) { return r.UserLabel(scope, i); };
      auto id = [&r](uint32_t i) { return r.UserId(i); };
      const std::vector<RankKey> order = RankAll(tl_users, value, label, id);
      // Every label copied into one buffer (no allocation per row), then viewed by the rows.
      size_t bytes = 0;
      for (const RankKey& k : order) bytes += k.label.size();
      auto text = std::make_shared<std::string>();
      text->reserve(bytes);
      for (const RankKey& k : order) text->append(k.label);
      result.usage.resize(order.size());
      const std::string_view all = *text;
      size_t at = 0;
      for (size_t i = 0; i < order.size(); ++i) {
        const Accumulator::Entry& e = tl_users.entries[order[i].index];
        const size_t n = order[i].label.size();
        result.usage[i] = {all.substr(at, n), static_cast<double>(e.cost_nanos) / 1e9, e.requests,
                           e.tokens};
        at += n;
      }
      result.text = std::move(text);
      break;
    }
    case RequestsMetric::kTotalRequestsPerDay: {
      result.days.resize(static_cast<size_t>(days));
      for (int64_t i = 0; i < days; ++i) result.days[i].day = query.start + static_cast<int32_t>(i);
      std::string start, prefix;
      for (const std::string& org : plan.orgs()) {
        for (uint32_t agent : plan.agents()) {
          store::RequestsSliceKey(org, agent, plan.project(), Granularity::kDay, query.start,
                                  &start);
          prefix.assign(start, 0, start.size() - 4);  // without the bucket
          plan.view().ScanSlices(
              prefix, start, [&](std::string_view key, const store::SliceView& s) {
                Granularity g;
                int32_t day;
                if (!store::RequestsKeyBucket(key, &g, &day) || day > query.end) return false;
                DayRow& row = result.days[static_cast<size_t>(day - query.start)];
                SatAddTo(&row.requests, s.totals().requests);
                SatAddTo(&row.errors, s.totals().errors);
                return true;
              });
        }
      }
      break;
    }
  }
  return result;
}

}  // namespace tally::query
