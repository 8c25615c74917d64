#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "kafka/admin.h"
#include "kafka/embedded_broker.h"
#include "kafka/partition_reader.h"
#include "kafka/producer.h"
#include "kafka/retention_guard.h"

namespace tally::kafka {
namespace {

struct Got {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int32_t partition;
};

// Reads every message of `topic` (all `partitions`; `expected` of them, delivered before the
// call) with ReadTopicToEnd.
std::vector<Got> ConsumeAll(const std::string& brokers, const std::string& topic, int partitions,
                            size_t expected) {
  auto records = ReadTopicToEnd(brokers, topic, 30000);
  EXPECT_TRUE(records) << records.error().message;
  std::vector<Got> out;
  if (!records) return out;
  for (Record& r : *records) {
    EXPECT_LT(r.partition, partitions);
    Got g{.key = std::move(r.key),
          .value = std::move(r.value),
          .headers = {},
          .partition = r.partition};
    for (auto& [name, value] : r.headers) g.headers[name] = std::move(value);
    out.push_back(std::move(g));
  }
  EXPECT_EQ(out.size(), expected);
  return out;
}

TEST(EmbeddedBrokerTest, RejectsBadOptions) {
  EXPECT_FALSE(EmbeddedBroker::Start({.brokers = 0}));
  EXPECT_FALSE(EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 0}}}));
}

TEST(KafkaTest, ProduceAndConsumeRoundTrip) {
  auto broker = EmbeddedBroker::Start({});
  ASSERT_TRUE(broker) << broker.error().message;
  const std::string bootstrap = (*broker)->bootstrap();
  ASSERT_NE(bootstrap.find("127.0.0.1:"), std::string::npos) << bootstrap;

  auto count = PartitionCount(bootstrap, "usage-events", 5000);
  ASSERT_TRUE(count) << count.error().message;
  EXPECT_EQ(*count, kDefaultEmbeddedPartitions);
  auto dlq_count = PartitionCount(bootstrap, "usage-events.dlq", 5000);
  ASSERT_TRUE(dlq_count) << dlq_count.error().message;
  EXPECT_EQ(*dlq_count, 1);

  ProducerOptions opts;
  opts.brokers = bootstrap;
  auto producer = Producer::Create(opts);
  ASSERT_TRUE(producer) << producer.error().message;
  constexpr int kN = 500;
  std::string value;  // reused buffer: Produce must copy
  int64_t value_bytes = 0;
  for (int i = 0; i < kN; ++i) {
    value = "{\"n\":" + std::to_string(i) + "}";
    value_bytes += static_cast<int64_t>(value.size());
    std::string key = "ws_" + std::to_string(i % 7);
    auto st = (*producer)->Produce("usage-events", key, value,
                                   {{"reason", "r" + std::to_string(i)}, {"empty", ""}});
    ASSERT_TRUE(st) << st.error().message;
  }
  auto fl = (*producer)->Flush(30000);
  ASSERT_TRUE(fl) << fl.error().message;
  EXPECT_EQ((*producer)->delivered(), kN);
  EXPECT_EQ((*producer)->failed(), 0);
  EXPECT_EQ((*producer)->delivered_bytes(), value_bytes);
  EXPECT_EQ((*producer)->in_flight(), 0);

  int64_t total = 0;
  for (int p = 0; p < kDefaultEmbeddedPartitions; ++p) {
    auto wm = Watermarks(bootstrap, "usage-events", p, 5000);
    ASSERT_TRUE(wm) << wm.error().message;
    EXPECT_EQ(wm->first, 0);
    total += wm->second;
  }
  EXPECT_EQ(total, kN);

  std::vector<Got> got = ConsumeAll(bootstrap, "usage-events", kDefaultEmbeddedPartitions, kN);
  ASSERT_EQ(got.size(), static_cast<size_t>(kN));
  std::vector<bool> seen(kN, false);
  std::map<std::string, int32_t> partition_of_key;
  for (const Got& g : got) {
    ASSERT_EQ(g.value.substr(0, 5), "{\"n\":");
    int i = std::stoi(g.value.substr(5));
    ASSERT_GE(i, 0);
    ASSERT_LT(i, kN);
    EXPECT_FALSE(seen[i]) << "duplicate " << i;
    seen[i] = true;
    EXPECT_EQ(g.value, "{\"n\":" + std::to_string(i) + "}");
    EXPECT_EQ(g.key, "ws_" + std::to_string(i % 7));
    ASSERT_EQ(g.headers.size(), 2u);
    EXPECT_EQ(g.headers.at("reason"), "r" + std::to_string(i));
    EXPECT_EQ(g.headers.at("empty"), "");
    // Same key, same partition.
    auto [it, inserted] = partition_of_key.emplace(g.key, g.partition);
    EXPECT_EQ(it->second, g.partition) << g.key;
  }
}

// in_flight() falls to 0 once the broker has answered, even when nobody polls: a producer held
// back by kafka::RetentionGuard asks it while waiting, and counting the delivery reports queued
// for it kept it waiting on its own reports for ever.
TEST(KafkaTest, InFlightServesTheReportsNobodyPolled) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 1}}});
  ASSERT_TRUE(broker);
  ProducerOptions opts;
  opts.brokers = (*broker)->bootstrap();
  auto producer = Producer::Create(opts);
  ASSERT_TRUE(producer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*producer)->Produce("t", "k", "v"));
  // No poll: the acknowledgements arrive and their reports wait in the out queue.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int64_t left = (*producer)->in_flight();
  while (left > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = (*producer)->in_flight();
  }
  EXPECT_EQ(left, 0);
  EXPECT_EQ((*producer)->delivered(), 10);
}

TEST(KafkaTest, ExplicitPartitionAndNullKey) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 3}}});
  ASSERT_TRUE(broker) << broker.error().message;
  ProducerOptions opts;
  opts.brokers = (*broker)->bootstrap();
  opts.linger_ms = 0;
  auto producer = Producer::Create(opts);
  ASSERT_TRUE(producer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*producer)->Produce("t", "", "x", {}, 2));
  ASSERT_TRUE((*producer)->Flush(10000));
  auto wm = Watermarks((*broker)->bootstrap(), "t", 2, 5000);
  ASSERT_TRUE(wm);
  EXPECT_EQ(wm->second, 10);
  wm = Watermarks((*broker)->bootstrap(), "t", 0, 5000);
  ASSERT_TRUE(wm);
  EXPECT_EQ(wm->second, 0);
  auto got = ConsumeAll((*broker)->bootstrap(), "t", 3, 10);
  ASSERT_EQ(got.size(), 10u);
  for (const Got& g : got) {
    EXPECT_EQ(g.partition, 2);
    EXPECT_EQ(g.key, "");
  }
  // A partition that does not exist is refused (at produce or at delivery).
  auto st = (*producer)->Produce("t", "", "x", {}, 7);
  if (st) {
    EXPECT_FALSE((*producer)->Flush(10000));
  }
}

TEST(KafkaTest, ProducerStartedOnFirstUseDeliversLikeAnyOther) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 2}}});
  ASSERT_TRUE(broker) << broker.error().message;
  // Properties are still checked up front.
  EXPECT_FALSE(Producer::Create({.brokers = (*broker)->bootstrap(),
                                 .extra = {{"no.such.property", "1"}},
                                 .start_on_first_use = true}));
  auto producer = Producer::Create(
      {.brokers = (*broker)->bootstrap(), .linger_ms = 0, .start_on_first_use = true});
  ASSERT_TRUE(producer) << producer.error().message;
  EXPECT_TRUE((*producer)->Flush(1000));  // nothing sent yet: nothing to wait for
  EXPECT_EQ((*producer)->in_flight(), 0);
  ASSERT_TRUE((*producer)->Produce("t", "k", "a"));
  std::vector<OutMessage> batch = {{.key = "k", .value = "b"}};
  ASSERT_TRUE((*producer)->ProduceAndWait("t", batch, 10000));
  ASSERT_TRUE((*producer)->Flush(10000));
  EXPECT_EQ(ConsumeAll((*broker)->bootstrap(), "t", 2, 2).size(), 2u);
}

TEST(KafkaTest, ClusterIdsDifferBetweenBrokers) {
  auto a = EmbeddedBroker::Start({});
  auto b = EmbeddedBroker::Start({});
  ASSERT_TRUE(a && b);
  EXPECT_NE((*a)->bootstrap(), (*b)->bootstrap());
  auto id_a = ClusterId((*a)->bootstrap(), 5000);
  auto id_b = ClusterId((*b)->bootstrap(), 5000);
  ASSERT_TRUE(id_a) << id_a.error().message;
  ASSERT_TRUE(id_b) << id_b.error().message;
  EXPECT_FALSE(id_a->empty());
  EXPECT_NE(*id_a, *id_b);
}

TEST(KafkaTest, ErrorsForUnknownTopicAndEmptyBrokers) {
  auto broker = EmbeddedBroker::Start({});
  ASSERT_TRUE(broker);
  auto count = PartitionCount((*broker)->bootstrap(), "no-such-topic", 3000);
  ASSERT_FALSE(count);
  EXPECT_EQ(count.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(ClusterId("", 100));
  EXPECT_FALSE(Producer::Create({}));
  auto bad = Producer::Create({.brokers = "x:1", .extra = {{"no.such.property", "1"}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "no.such.property");
}

TEST(KafkaTest, ProduceAndWaitAcknowledgesExactlyItsMessages) {
  auto broker = EmbeddedBroker::Start({});
  ASSERT_TRUE(broker) << broker.error().message;
  ProducerOptions opts;
  opts.brokers = (*broker)->bootstrap();
  auto producer = Producer::Create(opts);
  ASSERT_TRUE(producer) << producer.error().message;
  Producer* p = producer->get();
  EXPECT_TRUE(p->ProduceAndWait("usage-events", {}, 0));  // nothing to wait for

  // Several threads, each waiting for its own batches, while plain Produce() runs alongside.
  constexpr int kThreads = 4, kBatches = 10, kBatch = 25;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::string> values;
        for (int i = 0; i < kBatch; ++i) {
          values.push_back("t" + std::to_string(t) + "b" + std::to_string(b) + "i" +
                           std::to_string(i));
        }
        const std::string key = "ws_" + std::to_string(t);  // OutMessage holds views
        std::vector<OutMessage> batch;
        for (const std::string& v : values) batch.push_back({.key = key, .value = v});
        auto st = p->ProduceAndWait("usage-events", batch, 30000);
        if (!st) {
          ++failures[t];
          ADD_FAILURE() << st.error().message;
        }
      }
    });
  }
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(p->Produce("usage-events", "ws_plain", "plain"));
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  ASSERT_TRUE(p->Flush(30000));
  constexpr int kTotal = kThreads * kBatches * kBatch + 100;
  EXPECT_EQ(p->delivered(), kTotal);
  EXPECT_EQ(p->failed(), 0);
  std::vector<Got> got =
      ConsumeAll((*broker)->bootstrap(), "usage-events", kDefaultEmbeddedPartitions, kTotal);
  ASSERT_EQ(got.size(), static_cast<size_t>(kTotal));
  std::map<std::string, int> seen;
  for (const Got& g : got) ++seen[g.value];
  EXPECT_EQ(seen["plain"], 100);
  EXPECT_EQ(seen["t3b9i24"], 1);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kBatches * kBatch + 1));
}

TEST(KafkaTest, ProduceAndWaitTimesOutWhenNoBrokerAnswers) {
  // Nothing listens on port 1: nothing can be acknowledged.
  ProducerOptions opts;
  opts.brokers = "127.0.0.1:1";
  auto producer = Producer::Create(opts);
  ASSERT_TRUE(producer) << producer.error().message;
  std::vector<OutMessage> batch = {{.key = "ws", .value = "a"}, {.key = "ws", .value = "b"}};
  auto start = std::chrono::steady_clock::now();
  auto st = (*producer)->ProduceAndWait("usage-events", batch, 300);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("2 of 2 Kafka messages not acknowledged within 300 ms"),
            std::string::npos)
      << st.error().message;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ((*producer)->in_flight(), 2);
  // The destructor purges them; their late reports must not touch the finished call's state.
  producer->reset();
}

TEST(KafkaTest, ProduceAndWaitReportsItsFailuresAndFlushDoesNot) {
  // message.timeout.ms makes librdkafka fail the undeliverable messages quickly.
  auto producer = Producer::Create(
      {.brokers = "127.0.0.1:1", .linger_ms = 0, .extra = {{"message.timeout.ms", "300"}}});
  ASSERT_TRUE(producer) << producer.error().message;
  std::vector<OutMessage> batch = {{.key = "ws", .value = "a"},
                                   {.key = "ws", .value = "b", .headers = {{"h", "v"}}},
                                   {.key = "", .value = "c"}};
  auto st = (*producer)->ProduceAndWait("usage-events", batch, 20000);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("3 of 3 Kafka deliveries failed"), std::string::npos)
      << st.error().message;
  EXPECT_EQ((*producer)->failed(), 3);
  EXPECT_EQ((*producer)->in_flight(), 0);
  // Those failures were reported to their caller, not to whoever flushes next.
  EXPECT_TRUE((*producer)->Flush(1000));
  // A plain Produce() failure is still Flush()'s to report.
  ASSERT_TRUE((*producer)->Produce("usage-events", "ws", "d"));
  auto fl = (*producer)->Flush(20000);
  ASSERT_FALSE(fl);
  EXPECT_NE(fl.error().message.find("1 Kafka deliveries failed"), std::string::npos)
      << fl.error().message;
}

TEST(KafkaTest, DeliveryErrorsNameTheErrorNotThePayload) {
  // A delivery report's payload is the message, not an error string: the error must come from
  // the error code (reading the payload as a C string also ran past its end).
  auto producer = Producer::Create(
      {.brokers = "127.0.0.1:1", .linger_ms = 0, .extra = {{"message.timeout.ms", "300"}}});
  ASSERT_TRUE(producer) << producer.error().message;
  const std::string secret = "payload-that-must-not-appear-in-errors";
  std::vector<OutMessage> batch = {{.key = "ws", .value = secret}};
  auto st = (*producer)->ProduceAndWait("usage-events", batch, 20000);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message.find(secret), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("timed out"), std::string::npos) << st.error().message;
  ASSERT_TRUE((*producer)->Produce("usage-events", "ws", secret));
  auto fl = (*producer)->Flush(20000);
  ASSERT_FALSE(fl);
  EXPECT_EQ(fl.error().message.find(secret), std::string::npos) << fl.error().message;
  EXPECT_NE(fl.error().message.find("timed out"), std::string::npos) << fl.error().message;
}

}  // namespace
}  // namespace tally::kafka

namespace tally::kafka {
namespace {

// Commits `offset` for partition `partition` of `topic` on behalf of `group`, as a consumer that
// reads partitions directly (no group join) does.
void CommitFor(const std::string& brokers, const std::string& group, const std::string& topic,
               int32_t partition, int64_t offset) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err),
            RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err), RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  EXPECT_EQ(rd_kafka_commit(rk, list, /*async=*/0), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

TEST(RetentionGuardTest, RejectsBadOptions) {
  EXPECT_FALSE(RetentionGuard::Create({.brokers = ""}));
  EXPECT_FALSE(RetentionGuard::Create({.brokers = "127.0.0.1:1", .topic = ""}));
  EXPECT_FALSE(RetentionGuard::Create({.brokers = "127.0.0.1:1", .hold_fraction = 0}));
  EXPECT_FALSE(RetentionGuard::Create({.brokers = "127.0.0.1:1", .hold_fraction = 1.5}));
}

TEST(RetentionGuardTest, AdmitsWhileTheBrokerCannotBeReached) {
  auto guard = RetentionGuard::Create({.brokers = "127.0.0.1:1", .timeout_ms = 200});
  ASSERT_TRUE(guard);
  EXPECT_TRUE((*guard)->Admit(1 << 20));
  EXPECT_FALSE((*guard)->active());
}

TEST(RetentionGuardTest, HoldsBackUntilTheGroupCatchesUpAndNothingIsTrimmed) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 2}}});
  ASSERT_TRUE(broker);
  const std::string& bootstrap = (*broker)->bootstrap();
  RetentionGuardOptions options;
  options.brokers = bootstrap;
  options.topic = "t";
  options.group = "g";
  options.refresh_ms = 0;
  options.hold_refresh_ms = 0;
  auto guard = RetentionGuard::Create(options);
  ASSERT_TRUE(guard);
  ProducerOptions producer_options;
  producer_options.brokers = bootstrap;
  auto producer = Producer::Create(producer_options);
  ASSERT_TRUE(producer);

  // Nobody consumes group "g": everything produced counts as unconsumed, so the guard stops the
  // producer before the 5 MiB partition would trim anything. Messages in flight count in full,
  // so the first refusal may come early; once everything is delivered the guard may admit a few
  // more, until the partition itself holds the bound: fill it, flushing each time.
  const std::string value(1000, 'x');
  int64_t admitted = 0;
  Status held = Ok();
  for (int i = 0; i < 20'000; ++i) {
    held = (*guard)->Admit(value.size());
    if (!held) {
      // Two more looks: the bytes admitted since the look before last count as in flight.
      ASSERT_TRUE((*producer)->Flush(10'000));
      held = (*guard)->Admit(value.size());
      if (!held) held = (*guard)->Admit(value.size());
      if (!held) break;
    }
    ASSERT_TRUE((*producer)->Produce("t", "", value, {}, /*partition=*/0));
    ++admitted;
  }
  ASSERT_FALSE(held) << "20 MB admitted onto one 5 MiB partition without a consumer";
  EXPECT_TRUE((*guard)->active());
  EXPECT_EQ(held.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(held.error().message.find("t[0]"), std::string::npos) << held.error().message;
  EXPECT_NE(held.error().message.find("'g'"), std::string::npos) << held.error().message;
  ASSERT_TRUE((*producer)->Flush(10'000));
  EXPECT_LE(admitted * 1000, (*guard)->limit_bytes());
  EXPECT_GE(admitted * 1000, (*guard)->limit_bytes() / 2);
  auto wm = Watermarks(bootstrap, "t", 0, 5000);
  ASSERT_TRUE(wm);
  EXPECT_EQ(wm->first, 0) << "the broker trimmed partition 0";
  EXPECT_EQ(wm->second, admitted);

  // Still held while nothing changes (everything is delivered, so the answer is stable); the
  // other partition is empty, but the guard does not know where keyed messages go, so any full
  // partition holds back.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE((*guard)->Admit(value.size()));
  // The group commits everything: producing resumes.
  CommitFor(bootstrap, "g", "t", 0, admitted);
  EXPECT_TRUE((*guard)->Admit(value.size()));
  auto backlog = (*guard)->Backlog();
  ASSERT_EQ(backlog.size(), 2u);
  EXPECT_EQ(backlog[0].committed, admitted);
  EXPECT_EQ(backlog[0].high, admitted);
  EXPECT_EQ(backlog[0].unconsumed_bytes, 0);
  EXPECT_EQ(backlog[1].committed, -1);
}

// Callers that come while the guard's first look at a slow broker is under way are admitted
// only up to the bound, not unseen: a burst at start-up used to fill a partition before the
// first answer arrived.
TEST(RetentionGuardTest, CallersDuringTheFirstLookAreBoundedToo) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 2}}});
  ASSERT_TRUE(broker);
  ASSERT_TRUE((*broker)->SetRoundTripTime(100));
  auto guard = RetentionGuard::Create({.brokers = (*broker)->bootstrap(), .topic = "t"});
  ASSERT_TRUE(guard);

  constexpr size_t kChunk = 256 * 1024;
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> callers;
  std::vector<std::string> refusals(4);
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {  // 10 MiB each, 40 MiB in all: far past the bound
        Status st = (*guard)->Admit(kChunk);
        if (!st) {
          refusals[t] = st.error().message;
          return;
        }
        admitted += kChunk;
      }
    });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_LE(admitted.load(), (*guard)->limit_bytes());
  EXPECT_GE(admitted.load(), (*guard)->limit_bytes() - 4 * static_cast<int64_t>(kChunk));
  EXPECT_TRUE((*guard)->active());
  for (const std::string& r : refusals) {
    // Refused on the first answer (nothing committed, everything admitted still in flight).
    EXPECT_NE(r.find("nothing committed yet"), std::string::npos) << r;
  }
}

// A producer whose queue runs behind: what it admitted long ago but the broker has not taken yet
// is in no high watermark. Counted through unacknowledged_messages, it still holds the producer
// back at the bound; the bytes admitted over the last two looks alone would let it run on (here
// every Admit looks again, so they are one message).
TEST(RetentionGuardTest, MessagesStillQueuedCountAgainstTheBound) {
  auto broker = EmbeddedBroker::Start({.brokers = 1, .topics = {{"t", 2}}});
  ASSERT_TRUE(broker);
  std::atomic<int64_t> admitted{0};
  RetentionGuardOptions options;
  options.brokers = (*broker)->bootstrap();
  options.topic = "t";
  options.group = "g";
  options.refresh_ms = 0;
  options.hold_refresh_ms = 0;
  options.unacknowledged_messages = [&] { return admitted.load(); };  // nothing delivered
  auto guard = RetentionGuard::Create(options);
  ASSERT_TRUE(guard);
  constexpr int64_t kSize = 1000;
  Status held = Ok();
  while (admitted < 20'000) {
    held = (*guard)->Admit(kSize);
    if (!held) break;
    ++admitted;
  }
  ASSERT_FALSE(held) << admitted.load() << " messages admitted while none was delivered";
  EXPECT_LE(admitted * kSize, (*guard)->limit_bytes());
  // The bound is reached within two messages' worth of rounding (the average size includes no
  // framing before the log says otherwise).
  EXPECT_GE(admitted * kSize, (*guard)->limit_bytes() * 9 / 10);
}

TEST(RetentionGuardTest, EmbeddedClusterIdsAreRecognised) {
  auto broker = EmbeddedBroker::Start({});
  ASSERT_TRUE(broker);
  auto id = ClusterId((*broker)->bootstrap(), 5000);
  ASSERT_TRUE(id);
  EXPECT_TRUE(IsEmbeddedCluster(*id));
  EXPECT_FALSE(IsEmbeddedCluster("lkc-abc123"));
  EXPECT_FALSE(IsEmbeddedCluster(""));
}

TEST(EmbeddedBrokerTest, SaysWhatItKeeps) {
  EXPECT_EQ(EmbeddedBroker::RetentionSummary("usage-events", 32),
            "it keeps the newest 5 MiB of each partition (160 MiB in all over 32 partitions of "
            "usage-events) and nothing across restarts");
}

}  // namespace
}  // namespace tally::kafka
