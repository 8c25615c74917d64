// Refused lines to the dead-letter topic, with their reason and source in headers, and the
// rejection counters.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ingest/internal/consumer_impl.h"
#include "kafka/dead_letter.h"

namespace tally::ingest {
namespace {

// A failed dead-letter produce (a full producer queue, the broker away) is retried after this
// pause: long enough for the queue to drain a little, short enough not to hold the batch up.
constexpr auto kProduceRetryPause = std::chrono::milliseconds(200);
// How long one flush of the dead letters waits for the broker's acknowledgements before it is
// logged and tried again.
constexpr int kFlushTimeoutMs = 10'000;

}  // namespace

bool Consumer::Impl::DeadLetter(const pipeline::EventBatch& b) {
  for (const pipeline::RefusedLine& r : b.refused) {
    const auto* m = static_cast<const rd_kafka_message_t*>(r.source);
    std::string_view payload(static_cast<const char*>(m->payload), m->len);
    std::string_view key(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
    std::vector<std::pair<std::string, std::string>> headers = {
        {std::string(kafka::kDeadLetterReasonHeader), r.reason},
        {std::string(kafka::kDeadLetterSourceTopicHeader), options.topic},
        {std::string(kafka::kDeadLetterSourcePartitionHeader), std::to_string(m->partition)},
        {std::string(kafka::kDeadLetterSourceOffsetHeader), std::to_string(m->offset)},
    };
    while (true) {
      Status p = dlq->Produce(options.dlq_topic, key, payload, headers);
      if (p) break;
      spdlog::error("ingest: dead-letter produce failed ({}); retrying", p.error().message);
      if (stop->load()) return false;
      std::this_thread::sleep_for(kProduceRetryPause);
    }
  }
  while (true) {
    Status f = dlq->Flush(kFlushTimeoutMs);
    if (f) return true;
    spdlog::error("ingest: dead-letter flush failed ({}); retrying", f.error().message);
    if (stop->load()) return false;
  }
}

Counter* Consumer::Impl::RejectedCounter(std::string_view reason) {
  auto it = rejected_by_reason.find(std::string(reason));
  if (it != rejected_by_reason.end()) return it->second;
  Counter* c = metrics->GetCounter("tally_events_rejected_total",
                                   "Messages rejected by validation and dead-lettered.",
                                   {{"reason", std::string(reason)}});
  rejected_by_reason.emplace(std::string(reason), c);
  return c;
}

}  // namespace tally::ingest
