#pragma once
// The plan of one request-analytics request (query/requests.h): which scopes (organizations, or
// their workspaces' request scopes), agent selectors and buckets to read, over one store
// snapshot, and the reads every metric is made of (slices, users bitmaps, projects).
//
//   tally::query::internal::Plan plan(store, directory, query);
//   plan.ForEachSlice([&](const Scope& s, uint32_t agent, const store::SliceView& v) { ... });
//
// Header-only: the engine's reads stay inline in query/requests.cpp. Not thread-safe (one plan
// per request); the store, directory and query must outlive the plan.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "query/internal/requests_reader.h"
#include "query/range.h"
#include "query/requests.h"
#include "store/bitmap.h"
#include "store/codec.h"
#include "store/directory.h"
#include "store/store.h"

namespace tally::query::internal {

using store::kAllAgents;

// Where one organization's request data is keyed: the organization itself, or one of its
// workspaces (store::WorkspaceRequestScope).
struct Scope {
  std::string org;
  std::string key;
  bool operator<(const Scope& o) const { return std::tie(org, key) < std::tie(o.org, o.key); }
  bool operator==(const Scope& o) const = default;
};

// One request's plan: the (scope, agent selector) pairs and buckets to read.
class Plan {
 public:
  Plan(const store::Store& store, const store::Directory& directory, const RequestsQuery& q)
      : view_(store.NewReadView()), q_(q), buckets_(DecomposeRange(q.start, q.end)) {
    std::vector<std::string> orgs = q.organizations;
    std::sort(orgs.begin(), orgs.end());
    orgs.erase(std::unique(orgs.begin(), orgs.end()), orgs.end());
    if (q.workspace_scopes.empty()) {
      for (std::string& org : orgs) scopes_.push_back({org, org});
    } else {
      for (const auto& [org, ws] : q.workspace_scopes) {
        if (std::binary_search(orgs.begin(), orgs.end(), org)) {
          scopes_.push_back({org, store::WorkspaceRequestScope(org, ws)});
        }
      }
      std::sort(scopes_.begin(), scopes_.end());
      scopes_.erase(std::unique(scopes_.begin(), scopes_.end()), scopes_.end());
    }
    for (const Scope& s : scopes_) keys_.push_back(s.key);
    if (q.project_id) project_ = *q.project_id;
    if (q.agent_name) {
      store::Directory::Reader r(directory);
      if (const std::vector<uint32_t>* named = r.AgentsNamed(*q.agent_name)) agents_ = *named;
    } else {
      agents_ = {kAllAgents};
    }
  }

  const std::vector<Scope>& scopes() const { return scopes_; }
  // The scopes' keys: the organizations of the directory's labels.
  const std::vector<std::string>& scope_keys() const { return keys_; }
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
    for (const Scope& scope : scopes_) {
      for (uint32_t agent : agents_) {
        for (const BucketRef& b : buckets_) {
          store::RequestsSliceKey(scope.key, agent, project(), b.granularity, b.bucket, &key);
          view_->ReadSliceParts(key, [&](const store::SliceView& s) { fn(scope, agent, s); });
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
    return ListProjects(*view_, org, agent);
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
  std::vector<Scope> scopes_;
  std::vector<std::string> keys_;
  std::vector<uint32_t> agents_;
  std::string_view project_;
};

// The number of days of the query's range.
inline int64_t DaysOf(const RequestsQuery& query) { return int64_t{query.end} - query.start + 1; }

// Every day of the range, zero-filled.
inline std::vector<DayRow> EmptyDays(const RequestsQuery& query) {
  std::vector<DayRow> days(static_cast<size_t>(DaysOf(query)));
  for (size_t i = 0; i < days.size(); ++i) days[i].day = query.start + static_cast<int32_t>(i);
  return days;
}

}  // namespace tally::query::internal
