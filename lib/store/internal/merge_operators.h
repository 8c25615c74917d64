#pragma once
// RocksDB merge operators and the dedupe compaction filter. Internal to tally::store.
//
// Each store makes its own: the operators count the malformed operands they skip in the store's
// count (Store::MalformedOperands), and the dedupe filter reads the store's clock
// (StoreOptions::clock). Operators never fail: a malformed operand or base is skipped and
// counted, since refusing a merge would make the key unreadable for ever. Thread-safe (RocksDB
// calls them from its background threads).

#include <rocksdb/compaction_filter.h>
#include <rocksdb/merge_operator.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/clock.h"

namespace tally::store::internal {

// Where a store's operators count the malformed operands they skip (shared with the store).
using MalformedCount = std::shared_ptr<std::atomic<uint64_t>>;

std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator(MalformedCount malformed);
std::shared_ptr<rocksdb::MergeOperator> NewBitmapOrMergeOperator(MalformedCount malformed);
std::shared_ptr<rocksdb::MergeOperator> NewRecordMergeOperator(MalformedCount malformed);
std::shared_ptr<rocksdb::MergeOperator> NewSliceMergeOperator(MalformedCount malformed);
std::shared_ptr<rocksdb::MergeOperator> NewUserPackMergeOperator(MalformedCount malformed);

// Drops dedupe entries whose event time is older than (*newest - window_ms) and which were
// written more than window_ms before `clock`'s now.
std::shared_ptr<rocksdb::CompactionFilterFactory> NewDedupeCompactionFilterFactory(
    std::shared_ptr<std::atomic<int64_t>> newest, int64_t window_ms, Clock clock);

}  // namespace tally::store::internal
