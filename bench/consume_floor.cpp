// The consumer floor: what reading a stream costs before tally does anything with it. A plain
// librdkafka consumer with tallyd's client settings reads every partition of the topic and only
// counts, collecting the way tallyd's consumer does (it takes what has arrived, then naps up to
// 50 ms). Start it before the producer; it exits after --events messages and prints its own CPU
// seconds and CPU microseconds per message. scripts/bench.sh live --floor runs it at every rate
// against a fresh `tally broker`, next to tallyd.
//
//   consume_floor --brokers HOST:PORT --events 20000 [--topic usage-events]
//
// It drives librdkafka directly on purpose, not through kafka::PartitionReader: its whole point
// is the cost of bare librdkafka, with nothing of tally's in between.
#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Reads a topic with tallyd's client settings and only counts: the consumer floor."};
  std::string brokers, topic = "usage-events";
  int64_t events = 0;
  int timeout_s = 120;
  app.add_option("--brokers", brokers, "bootstrap.servers")->required();
  app.add_option("--events", events, "Messages to read before exiting")->required();
  app.add_option("--topic", topic, "Topic to read")->capture_default_str();
  app.add_option("--timeout", timeout_s, "Give up after this many seconds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // tallyd's consumer settings (lib/ingest/consumer.cpp).
  const std::vector<std::pair<const char*, std::string>> settings = {
      {"bootstrap.servers", brokers},    {"group.id", "consume-floor"},
      {"enable.auto.commit", "false"},   {"enable.partition.eof", "false"},
      {"fetch.wait.max.ms", "200"},      {"queued.max.messages.kbytes", "262144"},
      {"auto.offset.reset", "earliest"},
  };
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "consume_floor: %s\n", errstr);
      return 2;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    std::fprintf(stderr, "consume_floor: %s\n", errstr);
    return 1;
  }
  rd_kafka_poll_set_consumer(rk);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
      md->topics[0].partition_cnt == 0) {
    std::fprintf(stderr, "consume_floor: no topic '%s' at %s\n", topic.c_str(), brokers.c_str());
    return 1;
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), md->topics[0].partitions[i].id)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);

  const double cpu0 = CpuSeconds();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int64_t read = 0;
  while (read < events && std::chrono::steady_clock::now() < give_up) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, read == 0 ? 100 : 0);
    if (m == nullptr) {
      if (read > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (!m->err) ++read;
    rd_kafka_message_destroy(m);
  }
  const double cpu = CpuSeconds() - cpu0;
  std::printf("read %lld cpu_s %.3f us_per_event %.2f\n", static_cast<long long>(read), cpu,
              read ? cpu * 1e6 / static_cast<double>(read) : 0.0);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return read < events ? 1 : 0;
}
