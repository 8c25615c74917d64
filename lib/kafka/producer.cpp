#include "kafka/producer.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "kafka/internal/rdkafka_util.h"

namespace tally::kafka {
namespace {

void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  // Transport errors are retried by librdkafka itself; only fatal ones are final.
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    spdlog::error("kafka producer fatal error: {}", buf);
  } else {
    // librdkafka logs these itself (log_cb); repeating them would only double the noise.
    spdlog::debug("kafka producer: {} ({})", reason, rd_kafka_err2name(code));
  }
}

// The error of a delivery report. Not rd_kafka_message_errstr(), which is for consumed messages
// only: on a delivery report it reads the message's payload as a NUL-terminated error string
// (past its end, and leaking payload bytes into the error).
std::string DeliveryError(const rd_kafka_message_t* msg) { return rd_kafka_err2str(msg->err); }

}  // namespace

// Shared by one ProduceAndWait() call and the delivery reports of its messages (whichever
// thread serves them): it lives until the caller has stopped waiting AND every enqueued message
// has been reported, so a report arriving after a timeout never touches freed memory.
struct Producer::Waiter {
  std::mutex mu;
  int64_t pending = 0;  // enqueued messages without a delivery report yet
  int64_t refs = 1;     // pending + 1 while the caller waits
  int64_t failed = 0;
  std::string first_error;

  // Drops one reference; deletes the waiter when it was the last.
  static void Release(Waiter* w) {
    bool last;
    {
      std::lock_guard lock(w->mu);
      last = --w->refs == 0;
    }
    if (last) delete w;
  }
};

void Producer::OnDelivery(rd_kafka_t* rk, const void* msg_ptr, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  const auto* msg = static_cast<const rd_kafka_message_t*>(msg_ptr);
  const bool ok = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
  if (ok) {
    self->delivered_.fetch_add(1, std::memory_order_relaxed);
    self->delivered_bytes_.fetch_add(static_cast<int64_t>(msg->len), std::memory_order_relaxed);
  } else {
    self->failed_.fetch_add(1, std::memory_order_relaxed);
  }
  if (msg->_private != nullptr) {  // a ProduceAndWait() message: report to its caller only
    auto* w = static_cast<Waiter*>(msg->_private);
    bool last;
    {
      std::lock_guard lock(w->mu);
      --w->pending;
      if (!ok && w->failed++ == 0) w->first_error = DeliveryError(msg);
      last = --w->refs == 0;
    }
    if (last) delete w;
    return;
  }
  if (ok) return;
  self->failed_since_flush_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(self->error_mu_);
  if (self->first_error_.empty()) self->first_error_ = DeliveryError(msg);
}

Result<std::unique_ptr<Producer>> Producer::Create(const ProducerOptions& options) {
  if (options.brokers.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The Kafka broker list is empty.", "brokers");
  }
  std::unique_ptr<Producer> p(new Producer());
  internal::ConfPtr conf = internal::NewConf();
  std::vector<std::pair<std::string, std::string>> kv = {
      {"bootstrap.servers", options.brokers},
      {"enable.idempotence", options.idempotent ? "true" : "false"},
      {"linger.ms", std::to_string(options.linger_ms)},
  };
  for (const auto& e : options.extra) kv.emplace_back(e);
  if (auto st = internal::SetConf(conf.get(), kv); !st) return std::unexpected(st.error());
  rd_kafka_conf_set_opaque(conf.get(), p.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), [](rd_kafka_t* rk, const rd_kafka_message_t* m,
                                             void* opaque) { OnDelivery(rk, m, opaque); });
  rd_kafka_conf_set_error_cb(conf.get(), &OnError);
  if (options.start_on_first_use) {
    p->conf_ = {conf.release(), &rd_kafka_conf_destroy};
    return p;
  }
  auto handle = internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf));
  if (!handle) return std::unexpected(handle.error());
  p->rk_ = handle->release();
  return p;
}

Producer::~Producer() {
  rd_kafka_t* rk = rk_.load();
  if (rk == nullptr) return;
  // Without the purge, rd_kafka_destroy() would keep retrying undeliverable messages.
  rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_flush(rk, 1000);  // serves the purged messages' delivery reports
  for (auto& [name, rkt] : topics_) rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}

rd_kafka_t* Producer::Handle() {
  if (rd_kafka_t* rk = rk_.load()) return rk;
  std::lock_guard lock(topics_mu_);
  if (rk_.load() == nullptr && conf_) {
    auto handle = internal::NewHandle(RD_KAFKA_PRODUCER, internal::ConfPtr(conf_.release()));
    if (handle) {
      rk_ = handle->release();
    } else {
      spdlog::error("kafka producer: cannot start: {}", handle.error().message);
    }
  }
  return rk_.load();
}

Status Producer::Started() {
  if (Handle() != nullptr) return Ok();
  return Fail(ErrorCode::kUnavailable, "The Kafka producer could not start (see the log).");
}

rd_kafka_topic_t* Producer::Topic(std::string_view name) {
  rd_kafka_t* rk = Handle();
  if (rk == nullptr) return nullptr;
  std::lock_guard lock(topics_mu_);
  for (auto& [n, rkt] : topics_) {
    if (n == name) return rkt;
  }
  std::string n(name);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, n.c_str(), nullptr);
  if (rkt != nullptr) topics_.emplace_back(std::move(n), rkt);
  return rkt;
}

namespace {

Error InvalidTopic(std::string_view topic) {
  return Error{ErrorCode::kInvalidArgument,
               "Invalid Kafka topic '" + std::string(topic) +
                   "': " + rd_kafka_err2str(rd_kafka_last_error()),
               "topic"};
}

}  // namespace

Status Producer::Produce(std::string_view topic, std::string_view key, std::string_view value,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         int32_t partition) {
  if (Status started = Started(); !started) return started;
  rd_kafka_topic_t* rkt = Topic(topic);
  if (rkt == nullptr) return std::unexpected(InvalidTopic(topic));
  return Enqueue(rkt, key, value, headers, partition, nullptr,
                 std::chrono::steady_clock::time_point::max());
}

Status Producer::ProduceAndWait(std::string_view topic, std::span<const OutMessage> messages,
                                int timeout_ms) {
  if (messages.empty()) return Ok();
  if (Status started = Started(); !started) return started;
  rd_kafka_topic_t* rkt = Topic(topic);
  if (rkt == nullptr) return std::unexpected(InvalidTopic(topic));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  auto* w = new Waiter();
  Status enqueued = Ok();
  for (const OutMessage& m : messages) {
    {
      // Counted before the enqueue: the report may be served (by another thread) before
      // Enqueue() returns.
      std::lock_guard lock(w->mu);
      ++w->pending;
      ++w->refs;
    }
    enqueued = Enqueue(rkt, m.key, m.value, m.headers, m.partition, w, deadline);
    if (!enqueued) {
      std::lock_guard lock(w->mu);  // never enqueued: no report will come for it
      --w->pending;
      --w->refs;
      break;
    }
  }
  int64_t pending = 0, failed = 0;
  std::string first_error;
  for (;;) {
    {
      std::lock_guard lock(w->mu);
      pending = w->pending;
      failed = w->failed;
      first_error = w->first_error;
    }
    if (pending == 0 || !enqueued) break;
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left <= 0) break;
    // Any thread may serve our reports; poll in short slices so we notice that promptly.
    rd_kafka_poll(rk_.load(), static_cast<int>(std::min<int64_t>(left, 10)));
  }
  Waiter::Release(w);
  if (!enqueued) return enqueued;
  if (failed > 0) {
    return Fail(ErrorCode::kUnavailable,
                std::to_string(failed) + " of " + std::to_string(messages.size()) +
                    " Kafka deliveries failed; first error: " + first_error);
  }
  if (pending > 0) {
    return Fail(ErrorCode::kUnavailable, std::to_string(pending) + " of " +
                                             std::to_string(messages.size()) +
                                             " Kafka messages not acknowledged within " +
                                             std::to_string(timeout_ms) + " ms.");
  }
  return Ok();
}

Status Producer::Enqueue(rd_kafka_topic_t* rkt, std::string_view key, std::string_view value,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         int32_t partition, void* msg_opaque,
                         std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& [name, val] : headers) {
        rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()), val.data(),
                            static_cast<ssize_t>(val.size()));
      }
    }
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk_.load(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Serves delivery callbacks without blocking so the counters keep up.
      rd_kafka_poll(rk_.load(), 0);
      return Ok();
    }
    // On failure the headers stay ours.
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
    switch (err) {
      case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        if (std::chrono::steady_clock::now() >= deadline) {
          return Fail(ErrorCode::kUnavailable,
                      "The Kafka producer's local queue stayed full until the deadline.");
        }
        rd_kafka_poll(rk_.load(), 50);
        continue;
      case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return Fail(ErrorCode::kInvalidArgument,
                    std::string("Kafka rejected the message: ") + rd_kafka_err2str(err));
      case RD_KAFKA_RESP_ERR__FATAL:
        return Fail(ErrorCode::kUnavailable,
                    std::string("The Kafka producer hit a fatal error: ") + rd_kafka_err2str(err));
      default:
        return Fail(ErrorCode::kUnavailable,
                    std::string("Kafka produce failed: ") + rd_kafka_err2str(err));
    }
  }
}

Status Producer::Flush(int timeout_ms) {
  rd_kafka_t* rk = rk_.load();
  if (rk == nullptr) return Ok();  // never started: nothing was sent
  rd_kafka_resp_err_t err = rd_kafka_flush(rk, timeout_ms);
  int64_t failures = failed_since_flush_.exchange(0, std::memory_order_relaxed);
  std::string first;
  {
    std::lock_guard lock(error_mu_);
    first.swap(first_error_);
  }
  if (failures > 0) {
    return Fail(ErrorCode::kUnavailable,
                std::to_string(failures) + " Kafka deliveries failed; first error: " + first);
  }
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    return Fail(ErrorCode::kUnavailable, std::to_string(rd_kafka_outq_len(rk)) +
                                             " Kafka messages still in flight after " +
                                             std::to_string(timeout_ms) + " ms.");
  }
  return Ok();
}

int64_t Producer::in_flight() const {
  rd_kafka_t* rk = rk_.load();
  if (rk == nullptr) return 0;
  // The out queue also holds delivery reports nobody has served yet: serve them, or a caller
  // that only asks (a producer held back, polling nothing) would wait on its own reports.
  rd_kafka_poll(rk, 0);
  return rd_kafka_outq_len(rk);
}

}  // namespace tally::kafka
