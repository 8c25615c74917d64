// Offsets: when the staged batches are persisted with their offsets (and the retries while the
// store refuses writes), and the commits of persisted offsets to the group.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {
namespace {

// Kafka commits are informational (lag tools, and producers' hold-back on the embedded broker:
// kafka::RetentionGuard); the truth is in RocksDB. The embedded broker's producers wait for
// them, so there every stored batch is committed (an interval would hold a commit back until the
// next batch is stored, a few hundred ms under load).
constexpr auto kCommitInterval = std::chrono::milliseconds(1000);
constexpr auto kEmbeddedCommitInterval = std::chrono::milliseconds(0);
// The embedded broker keeps the newest 5 MiB of a partition: persist well before a partition's
// consumed-but-unpersisted messages could be trimmed (a crash would then lose them).
constexpr int64_t kEmbeddedPersistPartitionBytes = 1 << 20;
// A stream counts as paused (and what is staged gets persisted) after this long without a batch:
// a steady trickle arrives in bursts a few hundred ms apart, and persisting after each would
// cost as much as not staging at all.
constexpr auto kPersistWhenQuietFor = std::chrono::milliseconds(1000);
// While store writes keep failing, the failure is logged again this often: it stays visible in
// a log's recent lines without flooding it.
constexpr auto kStoreFailureLogInterval = std::chrono::seconds(60);

}  // namespace

void Consumer::Impl::OnIdle() {
  Wait();
  const auto now = Clock::now();
  if (now - last_submit >= kPersistWhenQuietFor || IntervalDue(now)) {
    PersistNow();
  }
  MaybeCommit();
}

bool Consumer::Impl::PersistDue(const std::vector<rd_kafka_message_t*>& messages) {
  if (!Staging()) return false;
  const auto now = Clock::now();
  if (!first_unpersisted) first_unpersisted = now;
  bool due = IntervalDue(now);
  for (rd_kafka_message_t* m : messages) {
    int64_t& bytes = unpersisted_bytes[m->partition];
    bytes += static_cast<int64_t>(m->len);
    if (embedded && bytes >= kEmbeddedPersistPartitionBytes) due = true;
  }
  if (!due && store->staged().bytes >= options.persist_max_bytes) due = true;
  if (due) RestartPersistCount();
  return due;
}

bool Consumer::Impl::IntervalDue(Clock::time_point now) const {
  return first_unpersisted &&
         now - *first_unpersisted >= std::chrono::milliseconds(options.persist_interval_ms);
}

void Consumer::Impl::RestartPersistCount() {
  first_unpersisted.reset();
  unpersisted_bytes.clear();
}

bool Consumer::Impl::PersistNow() {
  if (!Staging() || store->staged().rows == 0) return true;
  if (!PersistRetrying()) return false;
  RestartPersistCount();
  MarkPersisted();
  MaybeCommit();
  return true;
}

bool Consumer::Impl::PersistRetrying() {
  int backoff_ms = internal::kFirstStoreRetryMs;
  while (true) {
    const auto t0 = Clock::now();
    Status p = store->Persist();
    if (p) {
      persist_seconds->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
      StoreWrote();
      return true;
    }
    StoreFailed(p.error(), "persisting staged batches");
    if (stop->load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, internal::kMaxStoreRetryMs);
  }
}

void Consumer::Impl::MarkPersisted() {
  std::lock_guard lock(mu);
  for (auto& [p, pr] : progress) pr.persisted_offset = pr.next_offset;
}

void Consumer::Impl::MaybeCommit() {
  auto now = Clock::now();
  if (now - last_commit < (embedded ? kEmbeddedCommitInterval : kCommitInterval)) return;
  std::lock_guard lock(mu);
  rd_kafka_topic_partition_list_t* list = nullptr;
  for (const auto& [p, pr] : progress) {
    // Only the owner commits a partition (a standby's or an earlier owner's offsets may trail).
    if (!IsAssigned(p)) continue;
    auto it = committed.find(p);
    if (it != committed.end() && it->second == pr.persisted_offset) continue;
    if (list == nullptr) {
      list = rd_kafka_topic_partition_list_new(static_cast<int>(progress.size()));
    }
    rd_kafka_topic_partition_list_add(list, pr.topic.c_str(), p)->offset = pr.persisted_offset;
    committed[p] = pr.persisted_offset;
  }
  if (list == nullptr) return;
  last_commit = now;
  rd_kafka_commit(rk, list, 1);
  rd_kafka_topic_partition_list_destroy(list);
}

void Consumer::Impl::StoreFailed(const Error& error, std::string_view what) {
  store_write_failures->Add();
  store_write_failing->Set(1);
  store_failing->store(true);
  {
    std::lock_guard lock(store_failure_mu);
    const auto now = Clock::now();
    const bool first = !store_failing_since;
    if (first) store_failing_since = now;
    if (first || now - store_failure_logged >= kStoreFailureLogInterval) {
      store_failure_logged = now;
      spdlog::error(
          "ingest: {} failed ({}); ingest is paused and not ready, and retries every few "
          "seconds with nothing lost{}",
          what, error.message,
          error.code == ErrorCode::kResourceExhausted ? ": the disk of " + store->path() +
                                                            " is full; free space or grow it and "
                                                            "ingest resumes by itself"
                                                      : std::string());
    }
  }
  if (Status r = store->Resume(); !r) {
    spdlog::debug("ingest: the store cannot resume writes yet: {}", r.error().message);
  }
}

void Consumer::Impl::StoreWrote() {
  if (!store_failing->load()) return;
  std::lock_guard lock(store_failure_mu);
  const double seconds =
      store_failing_since
          ? std::chrono::duration<double>(Clock::now() - *store_failing_since).count()
          : 0;
  store_failing_since.reset();
  store_failing->store(false);
  store_write_failing->Set(0);
  spdlog::info("ingest: the store accepts writes again after {:.1f} s; ingest resumes", seconds);
}

}  // namespace tally::ingest
