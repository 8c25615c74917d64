#pragma once
// Batched reads of the request-analytics views for the requests engine (query/requests.cpp):
// average-users-per-project reads one users bitmap per (project, bucket), hundreds per request,
// and unions them per project.
//
//   tally::query::internal::RequestsReader rd(store);   // one store snapshot
//   std::vector<std::string> projects = rd.ProjectsOf("org_1", tally::store::kAllAgents);
//   std::vector<std::vector<std::string>> groups = ...;  // users-bitmap keys (codec.h)
//   std::vector<uint64_t> users = rd.UnionCardinalities(groups);
//
// Keys come from store/codec.h (the store owns every encoding). Header-only: included by the
// requests engine alone.
//
// Not thread-safe (one reader per request); reads see the snapshot taken at construction. The
// store must outlive the reader.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/codec.h"
#include "store/store.h"

namespace tally::query::internal {

// The projects with a slice under (org, agent selector) in `view`, in key order (any bucket): one
// key-only seek per project. Exactly what the engine's slice scans find: malformed slices are
// skipped, and the listing ends at a key that does not decode.
inline std::vector<std::string> ListProjects(const store::ReadView& view, std::string_view org,
                                             uint32_t agent) {
  std::vector<std::string> out;
  std::string prefix;
  store::RequestsProjectsPrefix(org, agent, &prefix);
  std::string start = prefix;
  for (;;) {
    bool decoded = false;
    view.ScanSliceKeys(prefix, start, [&](std::string_view key) {
      std::string_view project;
      Granularity g;
      int32_t bucket;
      decoded = store::DecodeRequestsProject(key.substr(prefix.size()), &project, &g, &bucket);
      if (decoded) out.emplace_back(project);
      return false;  // the first slice of the project is enough
    });
    if (!decoded) break;
    // Past every key of this project: its length-prefixed id followed by 0xff.
    start = prefix;
    store::PutLengthPrefixed(&start, out.back());
    start.push_back('\xff');
  }
  return out;
}

class RequestsReader {
 public:
  explicit RequestsReader(const store::Store& store) : view_(store.NewReadView()) {}
  RequestsReader(const RequestsReader&) = delete;
  RequestsReader& operator=(const RequestsReader&) = delete;

  // The projects with a slice under (org, agent selector): ListProjects on this reader's view.
  std::vector<std::string> ProjectsOf(std::string_view org, uint32_t agent) const {
    return ListProjects(*view_, org, agent);
  }

  // For each group of users-bitmap keys: how many distinct users the union of its bitmaps
  // holds (store::ReadView::UnionCardinalities: absent keys and malformed bitmaps count as
  // empty, one batched read for every key of every group).
  std::vector<uint64_t> UnionCardinalities(
      const std::vector<std::vector<std::string>>& groups) const {
    return view_->UnionCardinalities(groups);
  }

 private:
  std::unique_ptr<store::ReadView> view_;
};

}  // namespace tally::query::internal
