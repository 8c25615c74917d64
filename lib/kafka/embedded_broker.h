#pragma once
// An in-process Kafka-protocol broker for local use and tests (librdkafka's mock cluster).
//
//   auto broker = tally::kafka::EmbeddedBroker::Start({});   // usage-events (32), .dlq, .cluster
//   if (!broker) return broker.error();
//   std::string bootstrap = (*broker)->bootstrap();          // "127.0.0.1:34567"
//   ... any Kafka client can now produce to / consume from `bootstrap` ...
//   broker->reset();                                          // stops it; all data is gone
//
// Limits inherited from librdkafka 2.0.2's mock cluster: nothing is kept across restarts, each
// partition is trimmed to its newest 5 MiB (or 100k batches), the cluster id differs from
// process to process (and from instance to instance), static group membership is ignored (a
// restarted group member waits out the session timeout), and the Admin API (CreateTopics) is
// not supported: topics are created here, others are auto-created on first use. Hence the many
// partitions by default (32 x 5 MiB = 160 MiB kept in all), and kafka::RetentionGuard, which
// keeps tally's producers from running further ahead of the consumer than that.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace tally::kafka {

// Partitions of the events topic when nobody says otherwise: enough that a few hundred MB of
// events fit in the broker's retention (EmbeddedBroker::kRetentionPerPartitionBytes each).
inline constexpr int kDefaultEmbeddedPartitions = 32;

struct EmbeddedBrokerOptions {
  int brokers = 1;  // number of mock brokers (>= 1)
  // Topics created at start: (name, partitions).
  std::vector<std::pair<std::string, int>> topics = {{"usage-events", kDefaultEmbeddedPartitions},
                                                     {"usage-events.dlq", 1},
                                                     {"usage-events.cluster", 1}};
};

class EmbeddedBroker {
 public:
  // Starts the broker threads and creates the topics. kInvalidArgument for bad options,
  // kInternal when librdkafka cannot start the cluster or create a topic.
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const EmbeddedBrokerOptions& options);

  // Stops the brokers; connected clients see disconnects. Blocks until the threads exit.
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // The bootstrap.servers list ("127.0.0.1:port[,...]"). Immutable: safe from any thread.
  const std::string& bootstrap() const { return bootstrap_; }

  // Number of brokers; their ids are 1..brokers().
  int brokers() const { return brokers_; }

  // Fault injection, for tests of what clients do when the cluster misbehaves. Each call is
  // thread-safe and takes effect at once. kInvalidArgument for an unknown broker id, a negative
  // delay or an empty error list; kInternal when librdkafka refuses.

  // Delays every answer of every broker by `ms` (>= 0; 0 removes the delay), as a distant or
  // overloaded cluster would.
  Status SetRoundTripTime(int ms);
  // Takes broker `broker_id` (1..brokers(), or -1 for every broker) down: its connections are
  // closed and new ones refused until SetBrokerUp. Its partitions keep it as their leader (no
  // leader change), so they are unreachable meanwhile.
  Status SetBrokerDown(int32_t broker_id);
  Status SetBrokerUp(int32_t broker_id);
  // Makes broker `broker_id` the leader of `topic`'s `partition`, as a controller failover
  // would: clients learn it from their next metadata refresh (after a NOT_LEADER answer).
  Status SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker_id);
  // The next errors.size() requests of Kafka API `api_key` (0 Produce, 1 Fetch, 2 ListOffsets,
  // 3 Metadata, 8 OffsetCommit, 9 OffsetFetch, 10 FindCoordinator, 11 JoinGroup, 12 Heartbeat,
  // 14 SyncGroup), to any broker, fail with these error codes in order: Kafka protocol codes
  // (6 NOT_LEADER_OR_FOLLOWER, 7 REQUEST_TIMED_OUT, 8 BROKER_NOT_AVAILABLE, 15
  // COORDINATOR_NOT_AVAILABLE, 16 NOT_COORDINATOR, 19 NOT_ENOUGH_REPLICAS, ...) or librdkafka's
  // -195 (RD_KAFKA_RESP_ERR__TRANSPORT), which closes the client's connection instead.
  Status PushRequestErrors(int16_t api_key, const std::vector<int>& errors);

  // The newest bytes each partition keeps (librdkafka 2.0.2's mock cluster: fixed at 5 MiB).
  static constexpr int64_t kRetentionPerPartitionBytes = 5 * 1024 * 1024;

  // One sentence for start-up logs: what the broker keeps, e.g. "it keeps the newest 5 MiB of
  // each partition (160 MiB in all over 32 partitions of usage-events) and nothing across
  // restarts". `partitions` is the events topic's partition count.
  static std::string RetentionSummary(const std::string& topic, int partitions);

 private:
  EmbeddedBroker() = default;
  Status SetBrokerState(int32_t broker_id, bool up);
  rd_kafka_t* rk_ = nullptr;  // owned: the handle the mock cluster needs for book-keeping
  rd_kafka_mock_cluster_t* cluster_ = nullptr;  // owned
  int brokers_ = 1;
  std::string bootstrap_;
};

// Reads the bootstrap address of an embedded broker from the file `tally broker --addr-file`
// (or tallyd with its embedded broker: <data-dir>/broker.addr) writes: the file's first line
// without surrounding whitespace. The writers replace the file atomically, so a non-empty line
// is complete. Waits up to `wait` (0: looks once) for the file to hold an address, looking every
// 20 ms, and stops waiting early once `give_up` (optional, called between looks) returns true,
// e.g. when the process that should write it has exited. kNotFound when there is no address
// ("no broker address in <path>: ..." saying what to start or pass instead). Thread-safe.
Result<std::string> ReadBrokerAddressFile(const std::string& path,
                                          std::chrono::milliseconds wait = {},
                                          const std::function<bool()>& give_up = {});

}  // namespace tally::kafka
