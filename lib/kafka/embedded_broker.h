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

#include <cstdint>
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

  // Delays every answer of every broker by `ms` (>= 0; 0 removes the delay), as a distant or
  // overloaded cluster would. For tests of slow brokers. kInvalidArgument for a negative delay,
  // kInternal when librdkafka refuses. Thread-safe.
  Status SetRoundTripTime(int ms);

  // The newest bytes each partition keeps (librdkafka 2.0.2's mock cluster: fixed at 5 MiB).
  static constexpr int64_t kRetentionPerPartitionBytes = 5 * 1024 * 1024;

  // One sentence for start-up logs: what the broker keeps, e.g. "it keeps the newest 5 MiB of
  // each partition (160 MiB in all over 32 partitions of usage-events) and nothing across
  // restarts". `partitions` is the events topic's partition count.
  static std::string RetentionSummary(const std::string& topic, int partitions);

 private:
  EmbeddedBroker() = default;
  rd_kafka_t* rk_ = nullptr;  // owned: the handle the mock cluster needs for book-keeping
  rd_kafka_mock_cluster_t* cluster_ = nullptr;  // owned
  int brokers_ = 1;
  std::string bootstrap_;
};

}  // namespace tally::kafka
