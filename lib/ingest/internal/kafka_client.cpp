// The consumer's librdkafka clients: their settings, the start (cluster id, then the group's
// subscription or a direct assignment) and a close that cannot hang.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "ingest/internal/consumer_impl.h"
#include "kafka/admin.h"

namespace tally::ingest {
namespace {

// How long stopping waits for the cluster to answer the consumer's close.
constexpr auto kCloseTimeout = std::chrono::seconds(10);
// The close's queue is polled in slices this long, to check kCloseTimeout between them.
constexpr int kClosePollMs = 100;
// librdkafka's error messages fit in this (its own examples use 512 bytes).
constexpr size_t kErrorBufferSize = 512;
// An idle partition costs one fetch round trip per fetch.wait.max.ms; this bounds how late the
// embedded broker delivers the first event after a pause (see NewClient).
constexpr int kFetchWaitMaxMs = 200;
// librdkafka's prefetch queue per client (256 MiB): enough for a backlog's largest batches
// while the worker stores the previous one.
constexpr int kQueuedMaxKbytes = 262'144;
// Offsets live in the store, so a restarted tallyd only waits for the group to notice the dead
// member: 6 s (the broker's minimum is usually 6 s).
constexpr int kSessionTimeoutMs = 6000;
// A sixth of the session timeout: one lost heartbeat does not end the session.
constexpr int kHeartbeatIntervalMs = 1000;
// librdkafka's statistics (which brokers the client reaches, IngestHealth) once a second: a few
// KB of JSON, and a cut-off shows within a second of cut_off_after_ms.
constexpr int kStatisticsIntervalMs = 1000;
// Asking for the cluster id waits this long per try, so that Stop() is noticed between tries.
constexpr int kClusterIdTimeoutMs = 1000;
// While the topic does not exist yet (embedded broker starting, topic not created), look again
// this often.
constexpr auto kTopicWaitPause = std::chrono::milliseconds(500);

}  // namespace

Consumer::Impl::~Impl() {
  // The worker uses a batch's messages, the aggregator and the producer: let it finish (its
  // result no longer matters), then drop what was not stored before closing, so that the
  // revocation on close has nothing to store.
  pipeline.reset();
  closing = true;
  for (auto* messages : {&pending_messages, &flying_messages}) {
    for (auto* m : *messages) rd_kafka_message_destroy(m);
    messages->clear();
  }
  if (rk) Close(rk, this);
  if (standby_rk) Close(standby_rk, nullptr);
}

void Consumer::Impl::Close(rd_kafka_t* client, Impl* self) {
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
  bool closing = true;
  if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(client, queue)) {
    spdlog::warn("ingest: closing the Kafka consumer: {}", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    closing = false;
  }
  const auto deadline = Clock::now() + kCloseTimeout;
  while (closing && !rd_kafka_consumer_closed(client) && Clock::now() < deadline) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, kClosePollMs);
    if (ev == nullptr) continue;
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
      rd_kafka_topic_partition_list_t* parts = rd_kafka_event_topic_partition_list(ev);
      if (self != nullptr) {
        RebalanceCb(client, rd_kafka_event_error(ev), parts, self);
      } else if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        rd_kafka_assign(client, nullptr);
      }
    }
    rd_kafka_event_destroy(ev);
  }
  const bool closed = closing && rd_kafka_consumer_closed(client);
  rd_kafka_queue_destroy(queue);
  if (!closed) {
    spdlog::warn(
        "ingest: the Kafka cluster did not answer the consumer's close within {} s; stopping "
        "without it (nothing is lost: the offsets are in the store)",
        std::chrono::duration_cast<std::chrono::seconds>(kCloseTimeout).count());
  }
  rd_kafka_destroy_flags(client, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

Result<rd_kafka_t*> Consumer::Impl::NewClient(bool for_standby) {
  char errstr[kErrorBufferSize];
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", for_standby ? options.group + ".standby" : options.group},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A trimmed log shows up as a gap in offsets (see CheckContinuity); resetting to the
      // earliest retained offset keeps the partition moving instead of wedging it in an error
      // state, and the gap is reported loudly.
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      // An idle partition costs one fetch round trip per fetch.wait.max.ms (every partition of
      // a broker in one request). A real broker answers as soon as data arrives, so this adds
      // no delay there; the embedded broker waits it out when a fetch finds nothing, so it
      // bounds the delay of the first event after a pause.
      {"fetch.wait.max.ms", std::to_string(kFetchWaitMaxMs)},
      {"queued.max.messages.kbytes", std::to_string(kQueuedMaxKbytes)},
      {"client.id", for_standby ? "tallyd-standby" : "tallyd"},
  };
  if (!for_standby) {
    // Offsets live in RocksDB, so a restarted tallyd only waits for the group to notice the
    // dead member: keep that short.
    settings["session.timeout.ms"] = std::to_string(kSessionTimeoutMs);
    settings["heartbeat.interval.ms"] = std::to_string(kHeartbeatIntervalMs);
    // A rebalance moves only the partitions that change owner: the others keep being
    // consumed and served (a group of instances answers for them throughout).
    settings["partition.assignment.strategy"] = "cooperative-sticky";
    if (!options.instance_id.empty()) settings["group.instance.id"] = options.instance_id;
    // Which brokers the client reaches (IngestHealth): a few KB of JSON a second.
    settings["statistics.interval.ms"] = std::to_string(kStatisticsIntervalMs);
  }
  for (const auto& [k, v] : options.extra_config) {
    if (for_standby && (k == "group.instance.id" || k == "group.id")) continue;
    settings[k] = v;
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Fail(ErrorCode::kInvalidArgument, "kafka consumer setting " + k + ": " + errstr);
    }
  }
  if (!for_standby) {
    rd_kafka_conf_set_rebalance_cb(conf, &Impl::RebalanceCb);
    rd_kafka_conf_set_stats_cb(conf, &Impl::StatsCb);
    rd_kafka_conf_set_opaque(conf, this);
  }
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!client) {
    rd_kafka_conf_destroy(conf);
    return Fail(ErrorCode::kInvalidArgument,
                std::string("cannot create kafka consumer: ") + errstr);
  }
  rd_kafka_poll_set_consumer(client);
  return client;
}

Result<bool> Consumer::Impl::TakePartitions() {
  bool logged_wait = false;
  while (!stop->load()) {
    char* id = rd_kafka_clusterid(rk, kClusterIdTimeoutMs);
    if (id != nullptr) {
      std::lock_guard lock(mu);
      cluster_id = id;
      embedded = kafka::IsEmbeddedCluster(cluster_id);
      rd_kafka_mem_free(rk, id);
      break;
    }
    if (!logged_wait) {
      spdlog::warn("ingest: waiting for the Kafka cluster at {} to answer", options.brokers);
      logged_wait = true;
    }
  }
  if (stop->load()) return false;
  const bool direct = options.membership == Membership::kAuto && embedded;
  spdlog::info("ingest: cluster id {}{}", cluster_id,
               direct ? " (embedded broker: reading every partition directly, without a "
                        "group join; offsets are still committed to group '" +
                            options.group + "')"
                      : "");
  if (!direct) {
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
      return Fail(ErrorCode::kUnavailable, std::string("cannot subscribe to ") + options.topic +
                                               ": " + rd_kafka_err2str(err));
    }
    return true;
  }
  logged_wait = false;
  while (!stop->load()) {
    auto count =
        kafka::PartitionCount(options.brokers, options.topic, internal::kMetadataTimeoutMs);
    if (count) {
      rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(*count);
      for (int32_t p = 0; p < *count; ++p) {
        rd_kafka_topic_partition_list_add(parts, options.topic.c_str(), p);
      }
      rd_kafka_resp_err_t err = Assign(parts);
      rd_kafka_topic_partition_list_destroy(parts);
      if (err) {
        return Fail(ErrorCode::kUnavailable, std::string("cannot assign the partitions of ") +
                                                 options.topic + ": " + rd_kafka_err2str(err));
      }
      return true;
    }
    if (!logged_wait) {
      spdlog::warn("ingest: waiting for topic {} to exist ({})", options.topic,
                   count.error().message);
      logged_wait = true;
    }
    std::this_thread::sleep_for(kTopicWaitPause);
  }
  return false;
}

}  // namespace tally::ingest
