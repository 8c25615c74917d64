#include "store/write_set.h"

#include "store/internal/store_rep.h"

namespace tally::store {

using internal::Family;
using internal::ToSlice;

WriteSet::WriteSet(const Store& store)
    : rep_(std::make_unique<Rep>(&internal::Access::Rep(store))) {}

WriteSet::~WriteSet() = default;

void WriteSet::AddCounters(std::string_view key, std::string_view encoded_counters) {
  rep_->batch.Merge(rep_->store->family(internal::kCounters), ToSlice(key),
                    ToSlice(encoded_counters));
}

void WriteSet::AddUserPack(std::string_view key, std::string_view encoded_pack) {
  rep_->batch.Merge(rep_->store->family(internal::kUserPacks), ToSlice(key), ToSlice(encoded_pack));
}

void WriteSet::OrBitmap(std::string_view key, std::string_view encoded_bitmap) {
  rep_->batch.Merge(rep_->store->family(internal::kBitmaps), ToSlice(key), ToSlice(encoded_bitmap));
}

void WriteSet::MergeRecord(std::string_view key, std::string_view encoded_record) {
  rep_->batch.Merge(rep_->store->family(internal::kRecords), ToSlice(key), ToSlice(encoded_record));
}

void WriteSet::AddSlice(std::string_view key, std::string_view encoded_slice) {
  rep_->batch.Merge(rep_->store->family(internal::kRequests), ToSlice(key), ToSlice(encoded_slice));
}

void WriteSet::PutDedupe(std::string_view key, int64_t event_time_ms, int64_t written_ms) {
  std::string& v = rep_->value;
  v.clear();
  AppendDedupeValue(event_time_ms, written_ms, &v);
  rep_->batch.Put(rep_->store->family(internal::kDedupe), ToSlice(key), v);
}

void WriteSet::PutUser(std::string_view user_id, uint32_t index) {
  auto* dict = rep_->store->family(internal::kDict);
  UserDictKey(user_id, &rep_->key);
  rep_->batch.Put(dict, rep_->key, EncodeUint32(index));
  UserDictReverseKey(index, &rep_->key);
  rep_->batch.Put(dict, rep_->key, ToSlice(user_id));
}

void WriteSet::PutAgent(std::string_view workspace_id, std::string_view agent_id, uint32_t index) {
  auto* dict = rep_->store->family(internal::kDict);
  AgentDictKey(workspace_id, agent_id, &rep_->key);
  rep_->batch.Put(dict, rep_->key, EncodeUint32(index));
  AgentDictReverseKey(index, &rep_->key);
  EncodeAgentRef(workspace_id, agent_id, &rep_->value);
  rep_->batch.Put(dict, rep_->key, rep_->value);
}

void WriteSet::PutPair(uint32_t agent_index, uint32_t user_index, uint32_t pair_index) {
  PairDictKey(agent_index, user_index, &rep_->key);
  rep_->batch.Put(rep_->store->family(internal::kDict), rep_->key, EncodeUint32(pair_index));
}

void WriteSet::PutUserNext(uint32_t next_index) {
  rep_->batch.Put(rep_->store->family(internal::kDict), UserDictNextKey(),
                  EncodeUint32(next_index));
}

void WriteSet::PutAgentNext(uint32_t next_index) {
  rep_->batch.Put(rep_->store->family(internal::kDict), AgentDictNextKey(),
                  EncodeUint32(next_index));
}

void WriteSet::PutPairNext(uint32_t next_index) {
  rep_->batch.Put(rep_->store->family(internal::kDict), PairDictNextKey(),
                  EncodeUint32(next_index));
}

void WriteSet::PutOffset(std::string_view topic, int32_t partition, const StoredOffset& offset) {
  OffsetKey(topic, partition, &rep_->key);
  rep_->batch.Put(rep_->store->family(internal::kMeta), rep_->key, EncodeOffset(offset));
}

void WriteSet::PutNewestEventTime(int64_t time_ms) {
  std::string& v = rep_->value;
  v.clear();
  PutFixed64(&v, static_cast<uint64_t>(time_ms));
  rep_->batch.Put(rep_->store->family(internal::kMeta), NewestEventTimeKey(), v);
}

void WriteSet::PutPartitionWorkspace(std::string_view topic, int32_t partition,
                                     std::string_view workspace_id) {
  PartitionWorkspaceKey(topic, partition, workspace_id, &rep_->key);
  rep_->batch.Put(rep_->store->family(internal::kMeta), rep_->key, rocksdb::Slice());
}

void WriteSet::MarkUnindexedEvents() {
  rep_->batch.Put(rep_->store->family(internal::kMeta), PartitionLayoutKey(),
                  ToSlice(kUnpartitionedDataValue));
}

void WriteSet::Clear() { rep_->batch.Clear(); }

void WriteSet::set_roll_up_days(bool on) { rep_->roll_up_days = on; }

bool WriteSet::roll_up_days() const { return rep_->roll_up_days; }

bool WriteSet::empty() const { return rep_->batch.Count() == 0; }

}  // namespace tally::store
