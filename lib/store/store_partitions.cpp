#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <shared_mutex>

#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {

using internal::FromRocks;
using internal::ToSlice;
using internal::View;

Result<bool> Store::PartitionsSeparable() const {
  if (!partitioned()) return false;
  // The latest value: staged (MarkUnindexedEvents), else in the database, which BindRequestScopes
  // writes directly (no generation's snapshot need hold it).
  std::shared_ptr<internal::Generation> g = rep_->Current();
  std::string value;
  bool staged;
  {
    std::shared_lock lock(g->mu);
    staged = g->open.Get(internal::kMeta, PartitionLayoutKey(), &value);
  }
  if (!staged) {
    rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->family(internal::kMeta),
                                      PartitionLayoutKey(), &value);
    if (!s.ok() && !s.IsNotFound()) {
      return std::unexpected(FromRocks(s, "reading the partition layout"));
    }
  }
  return value == kPartitionedValue;
}

Result<std::vector<std::pair<int32_t, std::string>>> Store::LoadPartitionIndex(
    std::string_view topic) const {
  std::vector<std::pair<int32_t, std::string>> out;
  const std::string prefix = PartitionIndexPrefix(topic);
  auto scanned = ScanLatest(internal::kMeta, prefix, [&](std::string_view key, std::string_view) {
    int32_t partition;
    std::string_view ws;
    if (DecodePartitionWorkspaceKey(key, &partition, &ws)) out.emplace_back(partition, ws);
    return true;
  });
  if (!scanned) return std::unexpected(scanned.error());
  return out;
}

Result<uint64_t> Store::DropPartition(std::string_view topic, int32_t partition,
                                      std::span<const DroppedWorkspace> workspaces) {
  auto separable = PartitionsSeparable();
  if (!separable) return std::unexpected(separable.error());
  if (!*separable) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the store at " + options_.path +
                    " does not keep state per partition: its partitions cannot be dropped");
  }
  auto dropped = [&]() -> Result<uint64_t> {
    std::lock_guard lock(write_mu_);
    if (Status p = PersistLocked(); !p) return std::unexpected(p.error());
    rocksdb::WriteBatch batch;
    // Point deletions of every row in the ranges: range deletions would share the memtable's
    // insert hints (memtable_insert_with_hint_prefix_extractor) between its point and range
    // tables, which RocksDB does not support. Persisted above, so the database holds every row.
    Status read = Ok();
    auto delete_ranges = [&](const std::vector<FamilyRange>& ranges) {
      for (const FamilyRange& r : ranges) {
        rocksdb::ColumnFamilyHandle* cf = rep_->family(static_cast<internal::Family>(r.family));
        rocksdb::Slice upper = ToSlice(r.end);
        rocksdb::ReadOptions ro;
        ro.iterate_upper_bound = &upper;
        ro.fill_cache = false;
        std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, cf));
        for (it->Seek(ToSlice(r.begin)); it->Valid(); it->Next()) batch.Delete(cf, it->key());
        if (!it->status().ok() && read)
          read = std::unexpected(FromRocks(it->status(), "reading rows to drop"));
      }
    };
    std::string key, value;
    Record row;
    for (const DroppedWorkspace& w : workspaces) {
      delete_ranges(WorkspaceRowRanges(w.workspace_id));
      // Request rows under the organization the caller names, and under the stored binding.
      std::string stored_org;
      WorkspaceKey(w.workspace_id, &key);
      rocksdb::Status got =
          rep_->db->Get(rocksdb::ReadOptions(), rep_->family(internal::kRecords), key, &value);
      if (!got.ok() && !got.IsNotFound()) {
        return std::unexpected(FromRocks(got, "reading a workspace row"));
      }
      if (got.ok() && DecodeRecord(value, &row)) {
        const Field* f = FindField(row, field::kWorkspaceOrganization);
        if (f != nullptr) stored_org = f->value;
      }
      if (!w.organization_id.empty()) {
        delete_ranges(RequestScopeRanges(WorkspaceRequestScope(w.organization_id, w.workspace_id)));
      }
      if (!stored_org.empty() && stored_org != w.organization_id) {
        delete_ranges(RequestScopeRanges(WorkspaceRequestScope(stored_org, w.workspace_id)));
      }
    }
    const std::string index = PartitionIndexPrefix(topic, partition);
    delete_ranges({FamilyRange{internal::kMeta, index, PrefixSuccessor(index)}});
    if (!read) return std::unexpected(read.error());
    const uint64_t rows = batch.Count();
    OffsetKey(topic, partition, &key);
    batch.Delete(rep_->family(internal::kMeta), key);
    rocksdb::WriteOptions wo;
    wo.disableWAL = options_.disable_wal;
    rep_->merge_bound.BeginWrite(*rep_);
    rocksdb::Status s = rep_->db->Write(wo, &batch);
    rep_->merge_bound.EndWrite(*rep_);
    if (!s.ok()) return std::unexpected(FromRocks(s, "dropping a partition"));
    PublishLocked(nullptr, /*stored=*/true);
    return rows;
  }();
  // Followers (readers that bring views forward) learn of it like of any write.
  if (dropped) RunFollowers();
  return dropped;
}
}  // namespace tally::store
