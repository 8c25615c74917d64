#pragma once
// An in-process Kafka-protocol broker for local use and tests (librdkafka's mock cluster).
//
//   auto broker = tally::kafka::EmbeddedBroker::Start({});   // usage-events (4), .dlq (1)
//   if (!broker) return broker.error();
//   std::string bootstrap = (*broker)->bootstrap();          // "127.0.0.1:34567"
//   ... any Kafka client can now produce to / consume from `bootstrap` ...
//   broker->reset();                                          // stops it; all data is gone
//
// Limits inherited from librdkafka 2.0.2's mock cluster: nothing is kept across restarts, each
// partition is trimmed to its newest 5 MB (or 100k batches), the cluster id differs from
// process to process (and from instance to instance), and the Admin API (CreateTopics) is not
// supported: topics are created here, others are auto-created on first use.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace tally::kafka {

struct EmbeddedBrokerOptions {
  int brokers = 1;  // number of mock brokers (>= 1)
  // Topics created at start: (name, partitions).
  std::vector<std::pair<std::string, int>> topics = {{"usage-events", 4}, {"usage-events.dlq", 1}};
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

 private:
  EmbeddedBroker() = default;
  rd_kafka_t* rk_ = nullptr;  // owned: the handle the mock cluster needs for book-keeping
  rd_kafka_mock_cluster_t* cluster_ = nullptr;  // owned
  std::string bootstrap_;
};

}  // namespace tally::kafka
