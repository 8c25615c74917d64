#pragma once
// Batched reads of the request-analytics views for the requests engine (query/requests.cpp),
// where store::ReadView offers only one point read per bitmap: average-users-per-project reads
// one users bitmap per (project, bucket), hundreds per request.
//
//   tally::query::internal::RequestsReader rd(store);   // one RocksDB snapshot
//   std::vector<std::string> projects = rd.ProjectsOf("org_1", tally::store::kAllAgents);
//   std::vector<std::vector<std::string>> groups = ...;  // users-bitmap keys (codec.h)
//   std::vector<uint64_t> users = rd.UnionCardinalities(groups);
//
// Keys come from store/codec.h and values are decoded by store/bitmap.h (the store owns every
// encoding). Header-only: included by the requests engine alone.
//
// Not thread-safe (one reader per request); reads see the snapshot taken at construction.

#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "query/internal/snapshot_reader.h"
#include "store/bitmap.h"
#include "store/codec.h"
#include "store/store.h"

namespace tally::query::internal {

class RequestsReader {
 public:
  explicit RequestsReader(const store::Store& store) : snap_(store) {}
  ~RequestsReader() { slices_it_.reset(); }  // before the snapshot it reads from
  RequestsReader(const RequestsReader&) = delete;
  RequestsReader& operator=(const RequestsReader&) = delete;

  // The projects with a slice under (org, agent selector), in key order (any bucket): one seek
  // per project. Exactly what the engine's slice scans find: malformed slices are skipped, and
  // the listing ends at a key that does not decode.
  std::vector<std::string> ProjectsOf(std::string_view org, uint32_t agent) const {
    std::vector<std::string> out;
    std::string prefix;
    store::RequestsProjectsPrefix(org, agent, &prefix);
    if (!slices_it_) slices_it_ = snap_.NewScanIterator(snap_.store().requests());
    rocksdb::Iterator* it = slices_it_.get();
    const rocksdb::Slice p(prefix);
    std::string start = prefix;
    store::SliceView slice;
    for (;;) {
      it->Seek(start);
      while (it->Valid() && it->key().starts_with(p) &&
             !slice.Parse(std::string_view(it->value().data(), it->value().size()))) {
        it->Next();
      }
      if (!it->Valid() || !it->key().starts_with(p)) break;
      std::string_view rest(it->key().data() + prefix.size(), it->key().size() - prefix.size());
      std::string_view project;
      Granularity g;
      int32_t bucket;
      if (!store::DecodeRequestsProject(rest, &project, &g, &bucket)) break;
      out.emplace_back(project);
      // Past every key of this project: its length-prefixed id followed by 0xff.
      start = prefix;
      store::PutLengthPrefixed(&start, out.back());
      start.push_back('\xff');
    }
    return out;
  }

  // For each group of users-bitmap keys (bitmaps column family): how many distinct users the
  // union of its bitmaps holds. Absent keys and malformed bitmaps count as empty. One MultiGet
  // for every key of every group; unions with CRoaring's lazy OR (dense results become bitset
  // containers at once instead of growing sorted arrays merge by merge).
  std::vector<uint64_t> UnionCardinalities(
      const std::vector<std::vector<std::string>>& groups) const {
    std::vector<rocksdb::Slice> keys;
    for (const auto& g : groups)
      for (const std::string& k : g) keys.emplace_back(k);
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    if (!keys.empty()) {
      snap_.db()->MultiGet(snap_.read_options(), snap_.store().bitmaps(), keys.size(), keys.data(),
                           values.data(), statuses.data());
    }
    std::vector<uint64_t> out;
    out.reserve(groups.size());
    size_t at = 0;
    std::vector<std::string_view> parts;
    for (const auto& g : groups) {
      parts.clear();
      for (size_t i = 0; i < g.size(); ++i, ++at) {
        if (statuses[at].ok()) parts.emplace_back(values[at].data(), values[at].size());
      }
      out.push_back(store::UnionCardinalityOfEncoded(parts));
    }
    return out;
  }

 private:
  SnapshotReader snap_;
  mutable std::unique_ptr<rocksdb::Iterator> slices_it_;
};

}  // namespace tally::query::internal
