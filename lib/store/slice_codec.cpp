#include "store/slice_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/saturating.h"
#include "store/internal/codec_common.h"
#include "store/varint.h"

namespace tally::store {

using internal::kTagSlice;
using internal::kTagSlicePairs;
using internal::kTagSliceUsers;
using internal::PutBigEndian32;

namespace {

constexpr size_t kSliceTotalsBytes = 32;
constexpr size_t kSliceUserBytes = 28;
constexpr size_t kSliceAgentBytes = 20;

template <typename T>
void PutRaw(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out->append(b, sizeof(T));
}
template <typename T>
T GetRaw(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void RequestsKey(char tag, std::string_view org, bool with_agent, uint32_t agent,
                 const std::string_view* project, Granularity g, int32_t bucket, std::string* out) {
  out->clear();
  out->push_back(tag);
  PutLengthPrefixed(out, org);
  if (with_agent && agent != kAllAgents) {
    out->push_back(1);
    PutBigEndian32(out, agent);
  } else if (with_agent) {
    out->push_back(0);
  }
  if (project) {
    out->push_back(1);
    PutLengthPrefixed(out, *project);
  } else {
    out->push_back(0);
  }
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
}

}  // namespace

int64_t CostNanos(double usd) {
  const double nanos = usd * 1e9;
  if (!(nanos > 0)) return 0;            // also NaN
  if (nanos >= 9223372036854775807.0) {  // 2^63: beyond int64_t
    tally::internal::NoteSaturated();
    return INT64_MAX;
  }
  return std::llround(nanos);
}

void Slice::Clear() {
  totals = SliceTotals{};
  users.clear();
  agents.clear();
}

namespace {

void AddTotals(const SliceTotals& o, SliceTotals* t) {
  SatAddTo(&t->requests, o.requests);
  SatAddTo(&t->errors, o.errors);
  SatAddTo(&t->tokens, o.tokens);
  SatAddTo(&t->cost_nanos, o.cost_nanos);
}

}  // namespace

void Slice::Append(const Slice& o) {
  AddTotals(o.totals, &totals);
  users.insert(users.end(), o.users.begin(), o.users.end());
  agents.insert(agents.end(), o.agents.begin(), o.agents.end());
}

namespace {

// Sorts `v` by `less`. Entries that are several sorted parts one after another (a stored slice
// and its merge operands, a staged slice and the stored one, day slices rolled up into a month)
// are merged part by part, O(n log parts) with few comparisons; anything else is sorted.
template <typename T, typename Less>
void SortParts(std::vector<T>* v, Less less) {
  if (v->size() < 2) return;
  std::vector<size_t> starts = {0};
  for (size_t i = 1; i < v->size(); ++i) {
    if (less((*v)[i], (*v)[i - 1])) {
      starts.push_back(i);
      // Many parts: not a concatenation of sorted parts.
      if (starts.size() > 8 + v->size() / 16) {
        std::sort(v->begin(), v->end(), less);
        return;
      }
    }
  }
  // Merge neighbouring parts pairwise until one remains; the merged parts' starts are kept in
  // place (entry k/2 is written after entry k + 2 was read).
  while (starts.size() > 1) {
    size_t kept = 0;
    for (size_t k = 0; k < starts.size(); k += 2) {
      if (k + 1 < starts.size()) {
        const size_t end = k + 2 < starts.size() ? starts[k + 2] : v->size();
        std::inplace_merge(v->begin() + starts[k], v->begin() + starts[k + 1], v->begin() + end,
                           less);
      }
      starts[kept++] = starts[k];
    }
    starts.resize(kept);
  }
}

}  // namespace

void Slice::Normalize() {
  // Every field is an integer, so the order in which equal indexes combine cannot matter.
  SortParts(&users, [](const SliceUser& a, const SliceUser& b) { return a.user < b.user; });
  SortParts(&agents, [](const SliceAgent& a, const SliceAgent& b) { return a.agent < b.agent; });
  if (users.size() > 1) {
    size_t w = 0;
    for (size_t r = 1; r < users.size(); ++r) {
      if (users[r].user == users[w].user) {
        SatAddTo(&users[w].requests, users[r].requests);
        SatAddTo(&users[w].tokens, users[r].tokens);
        SatAddTo(&users[w].cost_nanos, users[r].cost_nanos);
      } else {
        users[++w] = users[r];
      }
    }
    users.resize(w + 1);
  }
  if (agents.size() > 1) {
    size_t w = 0;
    for (size_t r = 1; r < agents.size(); ++r) {
      if (agents[r].agent == agents[w].agent) {
        SatAddTo(&agents[w].requests, agents[r].requests);
        SatAddTo(&agents[w].tokens, agents[r].tokens);
      } else {
        agents[++w] = agents[r];
      }
    }
    agents.resize(w + 1);
  }
}

void AppendSlice(const Slice& s, std::string* out) {
  out->reserve(out->size() + 1 + kSliceTotalsBytes + 10 + s.users.size() * kSliceUserBytes +
               s.agents.size() * kSliceAgentBytes);
  out->push_back(1);
  PutRaw(out, s.totals.requests);
  PutRaw(out, s.totals.errors);
  PutRaw(out, s.totals.tokens);
  PutRaw(out, s.totals.cost_nanos);
  PutVarint64(out, s.users.size());
  for (const SliceUser& u : s.users) {
    PutRaw(out, u.user);
    PutRaw(out, u.requests);
    PutRaw(out, u.tokens);
    PutRaw(out, u.cost_nanos);
  }
  PutVarint64(out, s.agents.size());
  for (const SliceAgent& a : s.agents) {
    PutRaw(out, a.agent);
    PutRaw(out, a.requests);
    PutRaw(out, a.tokens);
  }
}

bool SliceView::Parse(std::string_view in) {
  *this = SliceView();
  if (in.size() < 1 + kSliceTotalsBytes || in[0] != 1) return false;
  const char* p = in.data() + 1;
  SliceTotals t;
  t.requests = GetRaw<uint64_t>(p);
  t.errors = GetRaw<uint64_t>(p + 8);
  t.tokens = GetRaw<uint64_t>(p + 16);
  t.cost_nanos = GetRaw<int64_t>(p + 24);
  in.remove_prefix(1 + kSliceTotalsBytes);
  uint64_t nu, na;
  if (!GetVarint64(&in, &nu) || nu > in.size() / kSliceUserBytes) return false;
  const char* users = in.data();
  in.remove_prefix(nu * kSliceUserBytes);
  if (!GetVarint64(&in, &na) || na * kSliceAgentBytes != in.size()) return false;
  totals_ = t;
  users_ = users;
  user_count_ = nu;
  agents_ = in.data();
  agent_count_ = na;
  return true;
}

SliceUser SliceView::user(size_t i) const {
  const char* p = users_ + i * kSliceUserBytes;
  return SliceUser{GetRaw<uint32_t>(p), GetRaw<uint64_t>(p + 4), GetRaw<uint64_t>(p + 12),
                   GetRaw<int64_t>(p + 20)};
}

SliceAgent SliceView::agent(size_t i) const {
  const char* p = agents_ + i * kSliceAgentBytes;
  return SliceAgent{GetRaw<uint32_t>(p), GetRaw<uint64_t>(p + 4), GetRaw<uint64_t>(p + 12)};
}

bool AppendEncodedSlice(std::string_view in, Slice* s) {
  SliceView v;
  if (!v.Parse(in)) return false;
  AddTotals(v.totals(), &s->totals);
  s->users.reserve(s->users.size() + v.user_count());
  for (size_t i = 0; i < v.user_count(); ++i) s->users.push_back(v.user(i));
  s->agents.reserve(s->agents.size() + v.agent_count());
  for (size_t i = 0; i < v.agent_count(); ++i) s->agents.push_back(v.agent(i));
  return true;
}

void RequestsSliceKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out) {
  RequestsKey(kTagSlice, org, true, agent, project, g, bucket, out);
}

void RequestsUsersKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out) {
  RequestsKey(kTagSliceUsers, org, true, agent, project, g, bucket, out);
}

void RequestsPairsKey(std::string_view org, const std::string_view* project, Granularity g,
                      int32_t bucket, std::string* out) {
  RequestsKey(kTagSlicePairs, org, false, kAllAgents, project, g, bucket, out);
}

bool RequestsUsersKeyOf(std::string_view slice_key, std::string* out) {
  if (slice_key.empty() || slice_key[0] != kTagSlice) return false;
  out->assign(slice_key);
  (*out)[0] = kTagSliceUsers;
  return true;
}

bool RequestsPairsKeyOf(std::string_view slice_key, std::string* out) {
  if (slice_key.empty() || slice_key[0] != kTagSlice) return false;
  std::string_view rest = slice_key.substr(1), org;
  if (!GetLengthPrefixed(&rest, &org) || rest.empty() || rest[0] != 0) return false;
  out->clear();
  out->push_back(kTagSlicePairs);
  PutLengthPrefixed(out, org);
  out->append(rest.substr(1));  // without the all-agents selector
  return true;
}

bool RequestsKeyBucket(std::string_view key, Granularity* g, int32_t* bucket) {
  if (key.size() < 8) return false;
  std::string_view tail = key.substr(key.size() - 5);
  *g = static_cast<Granularity>(tail[0]);
  tail.remove_prefix(1);
  return GetOrderedInt32(&tail, bucket);
}

void RequestsProjectsPrefix(std::string_view org, uint32_t agent, std::string* out) {
  out->clear();
  out->push_back(kTagSlice);
  PutLengthPrefixed(out, org);
  if (agent != kAllAgents) {
    out->push_back(1);
    PutBigEndian32(out, agent);
  } else {
    out->push_back(0);
  }
  out->push_back(1);
}

void RequestsOrgPrefix(std::string_view org, std::string* out) {
  out->clear();
  out->push_back(kTagSlice);
  PutLengthPrefixed(out, org);
}

bool DecodeRequestsProject(std::string_view rest, std::string_view* project, Granularity* g,
                           int32_t* bucket) {
  if (!GetLengthPrefixed(&rest, project) || rest.size() != 5) return false;
  *g = static_cast<Granularity>(rest[0]);
  rest.remove_prefix(1);
  return GetOrderedInt32(&rest, bucket);
}

}  // namespace tally::store
