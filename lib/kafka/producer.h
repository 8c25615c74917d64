#pragma once
// A Kafka producer over librdkafka's C API.
//
//   auto producer = tally::kafka::Producer::Create({.brokers = "127.0.0.1:9092"});
//   if (!producer) return producer.error();
//   auto st = (*producer)->Produce("usage-events", workspace_id, json, {{"reason", "bad time"}});
//   ...
//   if (auto f = (*producer)->Flush(30000); !f) log(f.error().message);  // failed deliveries
//
//   // Or: publish a group of messages and wait for exactly their acknowledgements.
//   std::vector<tally::kafka::OutMessage> batch = {{.key = ws, .value = json}};
//   if (auto st = (*producer)->ProduceAndWait("usage-events", batch, 10000); !st) ...
//
// Thread-safety: Produce(), ProduceAndWait(), Flush() and the counters may be called from any
// thread concurrently. Flush() reports the failures seen since the previous Flush() by any
// thread among messages sent with Produce(); ProduceAndWait() reports only its own messages.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
struct rd_kafka_conf_s;

namespace tally::kafka {

struct ProducerOptions {
  std::string brokers;     // bootstrap.servers, required
  bool idempotent = true;  // enable.idempotence: retries never duplicate or reorder
  int linger_ms = 5;       // linger.ms: batching delay
  // Further librdkafka properties (e.g. {"compression.type", "zstd"}); they override the above.
  std::map<std::string, std::string> extra = {};
  // Start the client (its threads and timers) on the first message instead of in Create: for
  // producers that may never send (dead letters), so that they cost nothing until they do.
  // Create still validates every property.
  bool start_on_first_use = false;
};

// One message of Producer::ProduceAndWait(). The views are only read during the call.
struct OutMessage {
  std::string_view key;  // empty: null key
  std::string_view value;
  std::vector<std::pair<std::string, std::string>> headers = {};
  int32_t partition = -1;  // -1: the partitioner chooses (by key)
};

class Producer {
 public:
  // Creates the client (connections are made lazily). kInvalidArgument for an empty broker list
  // or a rejected property (Error::field names it), kInternal if librdkafka cannot start.
  static Result<std::unique_ptr<Producer>> Create(const ProducerOptions& options);

  // Drops whatever is still queued or in flight (counted in failed()) and destroys the client
  // without waiting: call Flush() first to deliver everything.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues one message; key, value and headers are copied, so the caller's buffers may be
  // reused as soon as this returns. An empty key is sent as a null key. partition -1 lets the
  // partitioner choose (by key). When the local queue is full, serves delivery reports and
  // retries until there is room (blocking back-pressure). Errors: kInvalidArgument (message
  // too large, unknown partition), kUnavailable/kInternal for other enqueue failures. A
  // successful return means "queued", not "delivered": see Flush().
  Status Produce(std::string_view topic, std::string_view key, std::string_view value,
                 const std::vector<std::pair<std::string, std::string>>& headers = {},
                 int32_t partition = -1);

  // Enqueues `messages` to `topic` in order (as Produce() would) and waits up to timeout_ms for
  // the delivery report of each of THESE messages, serving delivery reports meanwhile (of any
  // thread's messages). Concurrent calls wait independently: one call's outcome never depends
  // on another's messages. Ok once the broker acknowledged every message (an empty span is
  // Ok at once). Errors:
  //   - Produce()'s errors when a message cannot be enqueued; the messages before it stay
  //     queued and may still be delivered;
  //   - kUnavailable naming the count and the first error when any delivery failed;
  //   - kUnavailable when some are still unacknowledged at the deadline; they stay queued and
  //     may still be delivered (within librdkafka's message.timeout.ms).
  // So an error means "some, all or none may be published": safe to retry only for consumers
  // that deduplicate (tally does, by source and id). Failures of these messages count in
  // failed() but are not reported by Flush().
  Status ProduceAndWait(std::string_view topic, std::span<const OutMessage> messages,
                        int timeout_ms);

  // Serves delivery reports and waits up to timeout_ms for every queued message. kUnavailable if
  // messages are still in flight at the deadline; kUnavailable (with the first error text) if any
  // delivery failed since the previous Flush().
  Status Flush(int timeout_ms);

  // Messages acknowledged by the broker / definitively failed, since creation (both APIs).
  int64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  // Value bytes of the acknowledged messages.
  int64_t delivered_bytes() const { return delivered_bytes_.load(std::memory_order_relaxed); }
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // Messages queued locally and not yet acknowledged or failed. Serves the delivery reports
  // already due first (their callbacks run on the calling thread), so it falls to 0 once the
  // broker has answered everything, whether or not anyone else polls.
  int64_t in_flight() const;

 private:
  struct Waiter;  // delivery tracking of one ProduceAndWait() call
  Producer() = default;
  static void OnDelivery(rd_kafka_t* rk, const void* msg, void* opaque);
  // The client, started by the first call (start_on_first_use); null if it could not start.
  rd_kafka_t* Handle();
  // Ok if the client runs (starting it if need be), else kUnavailable.
  Status Started();
  rd_kafka_topic_t* Topic(std::string_view name);
  // Enqueues one message with `msg_opaque` as its per-message opaque (a Waiter* or null). While
  // the local queue is full it serves reports and retries, until `deadline` (then kUnavailable).
  Status Enqueue(rd_kafka_topic_t* rkt, std::string_view key, std::string_view value,
                 const std::vector<std::pair<std::string, std::string>>& headers, int32_t partition,
                 void* msg_opaque, std::chrono::steady_clock::time_point deadline);

  std::atomic<rd_kafka_t*> rk_{nullptr};  // owned; set once
  std::unique_ptr<rd_kafka_conf_s, void (*)(rd_kafka_conf_s*)> conf_{nullptr,
                                                                     nullptr};  // until started
  std::mutex topics_mu_;  // also guards starting the client
  std::vector<std::pair<std::string, rd_kafka_topic_t*>> topics_;  // owned handles
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> delivered_bytes_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<int64_t> failed_since_flush_{0};
  std::mutex error_mu_;
  std::string first_error_;  // first delivery error since the previous Flush()
};

}  // namespace tally::kafka
