#include "kafka/embedded_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <fstream>
#include <thread>

#include "common/strings.h"
#include "kafka/internal/rdkafka_util.h"

namespace tally::kafka {

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(
    const EmbeddedBrokerOptions& options) {
  if (options.brokers < 1) {
    return Fail(ErrorCode::kInvalidArgument, "An embedded broker needs at least one broker.",
                "brokers");
  }
  for (const auto& [name, partitions] : options.topics) {
    if (name.empty() || partitions < 1) {
      return Fail(ErrorCode::kInvalidArgument,
                  "Invalid embedded topic '" + name + "' with " + std::to_string(partitions) +
                      " partitions.",
                  "topics");
    }
  }
  internal::ConfPtr conf = internal::NewConf();
  // The handle only serves the mock cluster's book-keeping; it never connects anywhere.
  auto st =
      internal::SetConf(conf.get(), {{"client.id", "tally-embedded-broker"}, {"log_level", "4"}});
  if (!st) return std::unexpected(st.error());
  auto handle = internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf));
  if (!handle) return std::unexpected(handle.error());

  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->rk_ = handle->release();
  broker->brokers_ = options.brokers;
  broker->cluster_ = rd_kafka_mock_cluster_new(broker->rk_, options.brokers);
  if (broker->cluster_ == nullptr) {
    return Fail(ErrorCode::kInternal, "librdkafka could not start the mock cluster.");
  }
  int replication = options.brokers >= 3 ? 3 : options.brokers;
  for (const auto& [name, partitions] : options.topics) {
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(broker->cluster_, name.c_str(), partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail(ErrorCode::kInternal,
                  "Cannot create embedded topic " + name + ": " + rd_kafka_err2str(err));
    }
  }
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->cluster_);
  return broker;
}

Status EmbeddedBroker::SetRoundTripTime(int ms) {
  if (ms < 0) {
    return Fail(ErrorCode::kInvalidArgument, "A round-trip time cannot be negative.", "ms");
  }
  // The mock cluster numbers its brokers from 1.
  for (int32_t id = 1; id <= brokers_; ++id) {
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(cluster_, id, ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail(ErrorCode::kInternal, "Cannot delay embedded broker " + std::to_string(id) +
                                            ": " + rd_kafka_err2str(err));
    }
  }
  return Ok();
}

Status EmbeddedBroker::SetBrokerDown(int32_t broker_id) { return SetBrokerState(broker_id, false); }

Status EmbeddedBroker::SetBrokerUp(int32_t broker_id) { return SetBrokerState(broker_id, true); }

Status EmbeddedBroker::SetBrokerState(int32_t broker_id, bool up) {
  if (broker_id != -1 && (broker_id < 1 || broker_id > brokers_)) {
    return Fail(ErrorCode::kInvalidArgument,
                "No embedded broker " + std::to_string(broker_id) + " (ids run from 1 to " +
                    std::to_string(brokers_) + ", or -1 for all).",
                "broker_id");
  }
  // One call per broker: -1 ("every broker") is not understood by every librdkafka version.
  const int32_t first = broker_id == -1 ? 1 : broker_id;
  const int32_t last = broker_id == -1 ? brokers_ : broker_id;
  for (int32_t id = first; id <= last; ++id) {
    rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster_, id)
                                 : rd_kafka_mock_broker_set_down(cluster_, id);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail(ErrorCode::kInternal, "Cannot take embedded broker " + std::to_string(id) +
                                            (up ? " up: " : " down: ") + rd_kafka_err2str(err));
    }
  }
  return Ok();
}

Status EmbeddedBroker::SetPartitionLeader(const std::string& topic, int32_t partition,
                                          int32_t broker_id) {
  if (broker_id < 1 || broker_id > brokers_) {
    return Fail(ErrorCode::kInvalidArgument,
                "No embedded broker " + std::to_string(broker_id) + " to lead " + topic + "/" +
                    std::to_string(partition) + ".",
                "broker_id");
  }
  rd_kafka_resp_err_t err =
      rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(ErrorCode::kInternal, "Cannot move the leader of " + topic + "/" +
                                          std::to_string(partition) + ": " + rd_kafka_err2str(err));
  }
  return Ok();
}

Status EmbeddedBroker::PushRequestErrors(int16_t api_key, const std::vector<int>& errors) {
  if (errors.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "No errors to push.", "errors");
  }
  std::vector<rd_kafka_resp_err_t> codes;
  codes.reserve(errors.size());
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, codes.size(), codes.data());
  return Ok();
}

std::string EmbeddedBroker::RetentionSummary(const std::string& topic, int partitions) {
  const int64_t mib = kRetentionPerPartitionBytes >> 20;
  return "it keeps the newest " + std::to_string(mib) + " MiB of each partition (" +
         std::to_string(mib * partitions) + " MiB in all over " + std::to_string(partitions) +
         " partition" + (partitions == 1 ? "" : "s") + " of " + topic +
         ") and nothing across restarts";
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

Result<std::string> ReadBrokerAddressFile(const std::string& path, std::chrono::milliseconds wait,
                                          const std::function<bool()>& give_up) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line)) {
      std::string_view address = TrimWhitespace(line);
      if (!address.empty()) return std::string(address);
    }
    if (std::chrono::steady_clock::now() >= deadline || (give_up && give_up())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail(
      ErrorCode::kNotFound,
      "no broker address in " + path +
          (wait.count() > 0 ? " (waited " + std::to_string(wait.count()) + " ms)" : std::string()) +
          ": start `tally broker --addr-file " + path +
          "` (or tallyd with its embedded broker, which writes <data-dir>/broker.addr) "
          "first, or give the brokers with --brokers",
      "broker-addr-file");
}

}  // namespace tally::kafka
