#include "store/internal/merge_operators.h"

#include <string>
#include <string_view>
#include <vector>

#include "store/bitmap.h"
#include "store/counters_codec.h"
#include "store/dedupe_codec.h"
#include "store/record_codec.h"
#include "store/slice_codec.h"

namespace tally::store::internal {
namespace {

std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// Field-wise addition of Counters. A malformed operand or base is skipped (and counted), never
// fatal: refusing a merge would make the key unreadable forever.
class CounterMerge : public rocksdb::MergeOperator {
 public:
  explicit CounterMerge(std::shared_ptr<std::atomic<uint64_t>> malformed)
      : malformed_(std::move(malformed)) {}
  const char* Name() const override { return "tally.counters"; }
  bool AllowSingleOperand() const override { return true; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    Counters sum;
    if (in.existing_value && !AddEncodedCounters(View(*in.existing_value), &sum)) ++*malformed_;
    for (const auto& op : in.operand_list)
      if (!AddEncodedCounters(View(op), &sum)) ++*malformed_;
    out->new_value.clear();
    AppendCounters(sum, &out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    Counters sum;
    for (const auto& op : operands)
      if (!AddEncodedCounters(View(op), &sum)) ++*malformed_;
    new_value->clear();
    AppendCounters(sum, new_value);
    return true;
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> malformed_;  // the store's count
};

class BitmapOrMerge : public rocksdb::MergeOperator {
 public:
  explicit BitmapOrMerge(std::shared_ptr<std::atomic<uint64_t>> malformed)
      : malformed_(std::move(malformed)) {}
  const char* Name() const override { return "tally.bitmap_or"; }
  bool AllowSingleOperand() const override { return true; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    UserBitmap b;
    if (in.existing_value && !b.OrEncoded(View(*in.existing_value))) ++*malformed_;
    for (const auto& op : in.operand_list)
      if (!b.OrEncoded(View(op))) ++*malformed_;
    out->new_value.clear();
    b.AppendEncoded(&out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    UserBitmap b;
    for (const auto& op : operands)
      if (!b.OrEncoded(View(op))) ++*malformed_;
    new_value->clear();
    b.AppendEncoded(new_value);
    return true;
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> malformed_;  // the store's count
};

// Slices of request analytics: totals added, per-user and per-agent entries combined by index.
class SliceMerge : public rocksdb::MergeOperator {
 public:
  explicit SliceMerge(std::shared_ptr<std::atomic<uint64_t>> malformed)
      : malformed_(std::move(malformed)) {}
  const char* Name() const override { return "tally.slices"; }
  bool AllowSingleOperand() const override { return true; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    Slice s;
    if (in.existing_value && !AppendEncodedSlice(View(*in.existing_value), &s)) ++*malformed_;
    for (const auto& op : in.operand_list)
      if (!AppendEncodedSlice(View(op), &s)) ++*malformed_;
    s.Normalize();
    out->new_value.clear();
    AppendSlice(s, &out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    Slice s;
    for (const auto& op : operands)
      if (!AppendEncodedSlice(View(op), &s)) ++*malformed_;
    s.Normalize();
    new_value->clear();
    AppendSlice(s, new_value);
    return true;
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> malformed_;  // the store's count
};

// Per-field last-writer-wins (by event time) / earliest-wins records. Operands are applied in
// log order, so ties resolve the same way on every replay.
class RecordMerge : public rocksdb::MergeOperator {
 public:
  explicit RecordMerge(std::shared_ptr<std::atomic<uint64_t>> malformed)
      : malformed_(std::move(malformed)) {}
  const char* Name() const override { return "tally.fields"; }
  bool AllowSingleOperand() const override { return true; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    Record base, op_rec;
    if (in.existing_value && !DecodeRecord(View(*in.existing_value), &base)) ++*malformed_;
    for (const auto& op : in.operand_list) {
      if (!DecodeRecord(View(op), &op_rec)) ++*malformed_;
      MergeRecord(op_rec, &base);
    }
    out->new_value.clear();
    AppendRecord(base, &out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    Record base, op_rec;
    for (const auto& op : operands) {
      if (!DecodeRecord(View(op), &op_rec)) ++*malformed_;
      MergeRecord(op_rec, &base);
    }
    new_value->clear();
    AppendRecord(base, new_value);
    return true;
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> malformed_;  // the store's count
};

// Per-user Counters of one bucket: union of the users, field-wise addition per user.
class UserPackMerge : public rocksdb::MergeOperator {
 public:
  explicit UserPackMerge(std::shared_ptr<std::atomic<uint64_t>> malformed)
      : malformed_(std::move(malformed)) {}
  const char* Name() const override { return "tally.user_counters"; }
  bool AllowSingleOperand() const override { return true; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    std::vector<std::string_view> packs;
    packs.reserve(in.operand_list.size() + 1);
    if (in.existing_value) packs.push_back(View(*in.existing_value));
    for (const auto& op : in.operand_list) packs.push_back(View(op));
    *malformed_ += MergeUserPacks(packs.data(), packs.size(), &out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger*) const override {
    std::vector<std::string_view> packs;
    packs.reserve(operands.size());
    for (const auto& op : operands) packs.push_back(View(op));
    *malformed_ += MergeUserPacks(packs.data(), packs.size(), new_value);
    return true;
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> malformed_;  // the store's count
};

class DedupeFilter : public rocksdb::CompactionFilter {
 public:
  DedupeFilter(int64_t horizon_ms, int64_t wall_horizon_ms)
      : horizon_ms_(horizon_ms), wall_horizon_ms_(wall_horizon_ms) {}
  const char* Name() const override { return "tally.dedupe_expiry"; }
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    int64_t t, inserted;
    if (!DecodeDedupeValue(View(value), &t, &inserted)) return false;  // keep what we can't read
    // Kept while its event time is inside the window OR it was written less than a window ago
    // (wall clock): a backfill of old events re-run within the window stays a no-op.
    return t < horizon_ms_ && inserted < wall_horizon_ms_;
  }

 private:
  int64_t horizon_ms_;
  int64_t wall_horizon_ms_;
};

class DedupeFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  DedupeFilterFactory(std::shared_ptr<std::atomic<int64_t>> newest, int64_t window_ms, Clock clock)
      : newest_(std::move(newest)), window_ms_(window_ms), clock_(clock) {}
  const char* Name() const override { return "tally.dedupe_expiry_factory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    int64_t newest = newest_->load(std::memory_order_relaxed);
    // Before any event has been seen there is no horizon: keep everything.
    int64_t horizon = newest == INT64_MIN ? INT64_MIN : newest - window_ms_;
    const int64_t wall = clock_.NowMillis();
    return std::make_unique<DedupeFilter>(horizon, wall - window_ms_);
  }

 private:
  std::shared_ptr<std::atomic<int64_t>> newest_;
  int64_t window_ms_;
  Clock clock_;
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator(MalformedCount malformed) {
  return std::make_shared<CounterMerge>(std::move(malformed));
}
std::shared_ptr<rocksdb::MergeOperator> NewBitmapOrMergeOperator(MalformedCount malformed) {
  return std::make_shared<BitmapOrMerge>(std::move(malformed));
}
std::shared_ptr<rocksdb::MergeOperator> NewSliceMergeOperator(MalformedCount malformed) {
  return std::make_shared<SliceMerge>(std::move(malformed));
}
std::shared_ptr<rocksdb::MergeOperator> NewUserPackMergeOperator(MalformedCount malformed) {
  return std::make_shared<UserPackMerge>(std::move(malformed));
}
std::shared_ptr<rocksdb::MergeOperator> NewRecordMergeOperator(MalformedCount malformed) {
  return std::make_shared<RecordMerge>(std::move(malformed));
}
std::shared_ptr<rocksdb::CompactionFilterFactory> NewDedupeCompactionFilterFactory(
    std::shared_ptr<std::atomic<int64_t>> newest, int64_t window_ms, Clock clock) {
  return std::make_shared<DedupeFilterFactory>(std::move(newest), window_ms, clock);
}

}  // namespace tally::store::internal
