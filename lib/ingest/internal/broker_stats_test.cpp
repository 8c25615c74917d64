#include "ingest/internal/broker_stats.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "ingest/internal/ingest_health.h"
#include "kafka/embedded_broker.h"

namespace tally::ingest::internal {
namespace {

// Shaped like librdkafka's statistics (STATISTICS.md), trimmed to what the reader looks at plus
// a few fields around it.
constexpr const char* kStats = R"({
  "name": "tallyd#consumer-1", "type": "consumer", "ts": 1,
  "brokers": {
    "127.0.0.1:9092/bootstrap": {"name": "127.0.0.1:9092/bootstrap", "nodeid": -1,
                                 "source": "configured", "state": "UP"},
    "GroupCoordinator": {"name": "GroupCoordinator", "nodeid": 2, "source": "logical",
                         "state": "UP"},
    "127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "nodeid": 1, "source": "learned",
                         "state": "UP", "toppars": {}},
    "127.0.0.1:9093/2": {"name": "127.0.0.1:9093/2", "nodeid": 2, "source": "learned",
                         "state": "CONNECT"}
  },
  "topics": {
    "usage-events": {"topic": "usage-events", "partitions": {
      "0": {"partition": 0, "broker": 1, "leader": 1, "fetch_state": "active"},
      "1": {"partition": 1, "broker": 2, "leader": 2, "fetch_state": "active"},
      "2": {"partition": 2, "broker": -1, "leader": -1, "fetch_state": "none"},
      "-1": {"partition": -1, "broker": -1, "leader": -1}
    }},
    "other": {"topic": "other", "partitions": {"0": {"partition": 0, "leader": 2}}}
  }
})";

TEST(BrokerStatsReaderTest, EachPartitionsLeaderAndItsConnection) {
  BrokerStatsReader reader;
  auto links = reader.LeaderLinks(kStats, "usage-events");
  ASSERT_TRUE(links) << links.error().message;
  ASSERT_EQ(links->size(), 3u);
  EXPECT_EQ((*links)[0].leader, 1);
  EXPECT_TRUE((*links)[0].leader_up);
  EXPECT_EQ((*links)[1].leader, 2);
  EXPECT_FALSE((*links)[1].leader_up) << "the logical coordinator entry must not count";
  EXPECT_EQ((*links)[1].leader_state, "CONNECT");
  EXPECT_EQ((*links)[2].leader, -1);
  EXPECT_FALSE((*links)[2].leader_up);
  auto none = reader.LeaderLinks(kStats, "absent-topic");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(BrokerStatsReaderTest, MalformedStatisticsAreAnError) {
  BrokerStatsReader reader;
  for (const char* bad : {"", "[]", "{", R"({"topics": {}})", R"({"brokers": {}})",
                          R"({"brokers": {"b": {"nodeid": "x", "state": "UP"}}, "topics": {}})"}) {
    EXPECT_FALSE(reader.LeaderLinks(bad, "usage-events")) << bad;
  }
}

TEST(IngestHealthTest, CutOffOnlyAfterTheGraceAndLaggingBeyondTheLimit) {
  MetricsRegistry registry;
  IngestHealth health({.cut_off_after = std::chrono::milliseconds(2000), .max_lag = 100},
                      &registry);
  const auto t0 = IngestHealth::Clock::now();
  // Partition 1's leader is unreachable; partition 0 is fine; 2 is not owned.
  health.OnStats(kStats, "usage-events", {0, 1}, t0);
  EXPECT_TRUE(health.Healthy());
  health.OnStats(kStats, "usage-events", {0, 1}, t0 + std::chrono::milliseconds(1999));
  EXPECT_TRUE(health.Healthy());
  health.OnStats(kStats, "usage-events", {0, 1}, t0 + std::chrono::milliseconds(2000));
  EXPECT_FALSE(health.Healthy());
  EXPECT_NE(health.Reason().find("owned partition(s) 1 (broker 2 CONNECT)"), std::string::npos)
      << health.Reason();
  // Partition 1 moves away: healthy at once.
  health.OnStats(kStats, "usage-events", {0}, t0 + std::chrono::milliseconds(2500));
  EXPECT_TRUE(health.Healthy());
  EXPECT_EQ(health.Reason(), "");
  // The grace starts over.
  health.OnStats(kStats, "usage-events", {0, 2}, t0 + std::chrono::milliseconds(3000));
  EXPECT_TRUE(health.Healthy());
  health.OnLag(100);
  EXPECT_TRUE(health.Healthy());
  health.OnLag(101);
  EXPECT_FALSE(health.Healthy());
  EXPECT_NE(health.Reason().find("101 messages (more than --max-lag 100)"), std::string::npos);
  health.OnLag(-1);
  EXPECT_TRUE(health.Healthy());
  // Malformed statistics change nothing.
  health.OnStats("{", "usage-events", {0, 2}, t0 + std::chrono::milliseconds(9000));
  EXPECT_TRUE(health.Healthy());
}

TEST(IngestHealthTest, NoLagLimitMeansNeverLagging) {
  MetricsRegistry registry;
  IngestHealth health({}, &registry);
  health.OnLag(INT64_MAX);
  EXPECT_TRUE(health.Healthy());
}

// The reader against librdkafka's own statistics: a consumer of an embedded broker with three
// brokers sees every leader up, then the partitions of a broker taken down as unreachable.
TEST(BrokerStatsReaderTest, ReadsLibrdkafkasStatisticsOfALiveConsumer) {
  kafka::EmbeddedBrokerOptions options;
  options.brokers = 3;
  options.topics = {{"t", 6}};
  auto broker = kafka::EmbeddedBroker::Start(options);
  ASSERT_TRUE(broker) << broker.error().message;
  struct Captured {
    std::mutex mu;
    std::string json;
  } captured;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : std::initializer_list<std::pair<const char*, std::string>>{
           {"bootstrap.servers", (*broker)->bootstrap()},
           {"group.id", "stats-test"},
           {"statistics.interval.ms", "100"},
           {"reconnect.backoff.max.ms", "200"}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf, k, v.c_str(), errstr, sizeof errstr), RD_KAFKA_CONF_OK);
  }
  rd_kafka_conf_set_opaque(conf, &captured);
  rd_kafka_conf_set_stats_cb(conf, [](rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* c = static_cast<Captured*>(opaque);
    std::lock_guard lock(c->mu);
    c->json.assign(json, len);
    return 0;
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  ASSERT_NE(rk, nullptr) << errstr;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(6);
  for (int p = 0; p < 6; ++p) rd_kafka_topic_partition_list_add(list, "t", p)->offset = 0;
  ASSERT_EQ(rd_kafka_assign(rk, list), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);

  BrokerStatsReader reader;
  // Polls until the statistics satisfy `want` (up to 15 s); returns the last links read.
  auto poll_until = [&](auto want) {
    std::vector<LeaderLink> links;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 50)) rd_kafka_message_destroy(m);
      std::string json;
      {
        std::lock_guard lock(captured.mu);
        json = captured.json;
      }
      if (json.empty()) continue;
      auto read = reader.LeaderLinks(json, "t");
      EXPECT_TRUE(read) << read.error().message;
      if (!read) break;
      links = *read;
      if (want(links)) break;
    }
    return links;
  };
  auto all_up = [](const std::vector<LeaderLink>& links) {
    if (links.size() != 6) return false;
    for (const LeaderLink& l : links) {
      if (!l.leader_up) return false;
    }
    return true;
  };
  std::vector<LeaderLink> links = poll_until(all_up);
  ASSERT_TRUE(all_up(links)) << "not every leader was reached";
  const int32_t down = links[0].leader;
  ASSERT_TRUE((*broker)->SetBrokerDown(down));
  links = poll_until([down](const std::vector<LeaderLink>& ls) {
    for (const LeaderLink& l : ls) {
      if (l.leader == down && l.leader_up) return false;
    }
    return !ls.empty();
  });
  size_t unreachable = 0;
  for (const LeaderLink& l : links) {
    EXPECT_EQ(l.leader_up, l.leader != down) << "partition " << l.partition;
    unreachable += !l.leader_up;
  }
  EXPECT_GT(unreachable, 0u);
  ASSERT_TRUE((*broker)->SetBrokerUp(down));
  links = poll_until(all_up);
  EXPECT_TRUE(all_up(links)) << "the broker came back";
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

}  // namespace
}  // namespace tally::ingest::internal
