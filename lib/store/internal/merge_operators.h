#pragma once
// RocksDB merge operators and the dedupe compaction filter. Internal to tally::store.

#include <rocksdb/compaction_filter.h>
#include <rocksdb/merge_operator.h>

#include <atomic>
#include <memory>

namespace tally::store::internal {

std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator();
std::shared_ptr<rocksdb::MergeOperator> NewBitmapOrMergeOperator();
std::shared_ptr<rocksdb::MergeOperator> NewRecordMergeOperator();
std::shared_ptr<rocksdb::MergeOperator> NewSliceMergeOperator();
std::shared_ptr<rocksdb::MergeOperator> NewUserPackMergeOperator();

// Drops dedupe entries whose event time is older than (*newest - window_ms).
std::shared_ptr<rocksdb::CompactionFilterFactory> NewDedupeCompactionFilterFactory(
    std::shared_ptr<std::atomic<int64_t>> newest, int64_t window_ms);

// Malformed operands skipped so far by all merge operators.
uint64_t MalformedOperandCount();

}  // namespace tally::store::internal
