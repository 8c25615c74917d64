// End-to-end ingest benchmark: generated events -> Kafka producer -> tallyd's embedded broker ->
// tallyd's consumer -> RocksDB views, timed from the first produce to the last event stored
// (tallyd's /readyz next_offset). Each run also measures a baseline: the same events and the same
// paced producer against a standalone embedded broker (`tally broker`) read by a plain
// group-less consumer (kafka::PartitionReader) that only counts, i.e. the broker's raw throughput
// on this machine.
//
//   ingest_bench [--events 1000000] [--partitions 4] [--runs 3]
//
// The mock broker keeps only ~5 MB per partition, so the producer is paced on what the consumer
// has read (tallyd's /readyz read_offset; see bench_util.h); a run is invalid unless tallyd reports
// tally_events_consumed_total == events and tally_log_trimmed_total == 0.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "kafka/partition_reader.h"

namespace tb = tally::bench;

namespace {

// A group-less consumer that reads every partition from the beginning and only counts.
class CountingConsumer {
 public:
  static tally::Result<std::unique_ptr<CountingConsumer>> Start(const std::string& brokers,
                                                                const std::string& topic,
                                                                int partitions) {
    std::unique_ptr<CountingConsumer> c(new CountingConsumer());
    c->next_ = std::make_unique<std::atomic<int64_t>[]>(partitions);
    for (int p = 0; p < partitions; ++p) c->next_[p] = 0;
    c->partitions_ = partitions;
    tally::kafka::PartitionReaderOptions o{.brokers = brokers, .topic = topic};
    for (int p = 0; p < partitions; ++p) o.start[p] = tally::kafka::kBeginningOffset;
    // The same client settings as tally's consumer (lib/ingest/consumer.cpp).
    o.properties = {{"group.id", "bench-baseline"},
                    {"auto.offset.reset", "error"},
                    {"fetch.wait.max.ms", "50"},
                    {"queued.max.messages.kbytes", "262144"}};
    auto reader = tally::kafka::PartitionReader::Open(o);
    if (!reader) return std::unexpected(reader.error());
    c->reader_ = std::move(*reader);
    c->thread_ = std::thread([raw = c.get()] { raw->Loop(); });
    return c;
  }

  ~CountingConsumer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  tally::Status Progress(std::vector<int64_t>* next) const {
    next->resize(partitions_);
    for (int p = 0; p < partitions_; ++p) (*next)[p] = next_[p].load(std::memory_order_relaxed);
    return tally::Ok();
  }
  int64_t errors() const { return errors_.load(); }
  int64_t consumed() const { return consumed_.load(); }

 private:
  CountingConsumer() = default;
  // The only user of reader_ once started.
  void Loop() {
    while (!stop_.load(std::memory_order_relaxed)) {
      auto m = reader_->Poll(std::chrono::milliseconds(100));
      if (!m) {
        errors_.fetch_add(1);
        std::fprintf(stderr, "baseline consumer: %s\n", m.error().message.c_str());
      } else if (*m && (*m)->partition() >= 0 && (*m)->partition() < partitions_) {
        next_[(*m)->partition()].store((*m)->offset() + 1, std::memory_order_relaxed);
        consumed_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  std::unique_ptr<tally::kafka::PartitionReader> reader_;
  int partitions_ = 0;
  std::unique_ptr<std::atomic<int64_t>[]> next_;
  std::atomic<int64_t> consumed_{0}, errors_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct RunResult {
  bool valid = false;
  std::string why_invalid;
  tb::PaceResult pace;
  double server_cpu_s = 0;  // CPU seconds of tallyd (or of the standalone broker)
  double client_cpu_s = 0;  // CPU seconds of this process (producer, pacing, baseline consumer)
  double consumed = 0, trimmed = 0, batches = 0, apply_s = 0;
  double eps() const { return pace.seconds > 0 ? pace.events / pace.seconds : 0; }
  double mbps() const { return pace.seconds > 0 ? pace.bytes / pace.seconds / 1e6 : 0; }
};

struct Args {
  int64_t events = 1'000'000;
  int partitions = 4;
  int runs = 3;
  double max_lag_mb = 2.5;
  std::string compression = "none";
  bool baseline = true;
  bool tally = true;
  bool keep = false;
  std::vector<std::string> tallyd_args;
};

RunResult RunTally(const Args& args, const tb::EventSet& events, const tb::PaceOptions& pace) {
  RunResult r;
  tb::TallydOptions to;
  to.binary = TALLYD_PATH;
  to.partitions = args.partitions;
  to.cache_ttl_s = 0;
  to.extra_args = args.tallyd_args;
  to.keep_data_dir = args.keep;
  auto tallyd = tb::Tallyd::Start(to);
  if (!tallyd) {
    r.why_invalid = "tallyd: " + tallyd.error().message;
    return r;
  }
  // /readyz is polled on a connection of its own so it never queues behind other requests.
  auto progress_client =
      tally::http::testing::HttpClient::Connect((*tallyd)->host(), (*tallyd)->port());
  if (!progress_client) {
    r.why_invalid = progress_client.error().message;
    return r;
  }
  const pid_t pid = (*tallyd)->process().pid();
  const double cpu0 = tb::ProcessCpuSeconds(pid), self0 = tb::ProcessCpuSeconds(0);
  auto res = tb::ProduceAndPace(events, (*tallyd)->broker(), pace,
                                tb::ReadyzProgress(&*progress_client, args.partitions));
  r.server_cpu_s = tb::ProcessCpuSeconds(pid) - cpu0;
  r.client_cpu_s = tb::ProcessCpuSeconds(0) - self0;
  if (!res) {
    r.why_invalid = res.error().message + "\n" + tb::FileTail((*tallyd)->process().log_path());
    return r;
  }
  r.pace = *res;
  auto metrics = (*tallyd)->client().Send("GET", "/metrics");
  if (!metrics || metrics->status != 200) {
    r.why_invalid = "GET /metrics failed";
    return r;
  }
  auto get = [&](const char* name) {
    auto v = tb::PrometheusValue(metrics->body, name);
    return v ? *v : -1.0;
  };
  r.consumed = get("tally_events_consumed_total");
  r.trimmed = get("tally_log_trimmed_total");
  r.batches = get("tally_batches_applied_total");
  r.apply_s = get("tally_batch_apply_seconds_sum");
  if (r.trimmed != 0) {
    r.why_invalid = "tally_log_trimmed_total = " + std::to_string(r.trimmed);
  } else if (r.consumed != static_cast<double>(events.events.size())) {
    r.why_invalid = "tally_events_consumed_total = " + std::to_string(r.consumed);
  } else {
    r.valid = true;
  }
  return r;
}

RunResult RunBaseline(const Args& args, const tb::EventSet& events, const tb::PaceOptions& pace) {
  RunResult r;
  tb::TempDir dir("tally-bench-broker-");
  if (args.keep) dir.keep();
  auto broker = tb::ChildProcess::Spawn(
      {TALLY_CLI_PATH, "broker", "--partitions", std::to_string(args.partitions), "--addr-file",
       dir.path() + "/broker.addr"},
      dir.path() + "/broker.log");
  if (!broker) {
    r.why_invalid = broker.error().message;
    return r;
  }
  auto addr = tb::WaitForBrokerAddress(dir.path() + "/broker.addr", 30'000, broker->get());
  if (!addr) {
    r.why_invalid = addr.error().message;
    return r;
  }
  auto consumer = CountingConsumer::Start(*addr, pace.topic, args.partitions);
  if (!consumer) {
    r.why_invalid = consumer.error().message;
    return r;
  }
  const pid_t pid = (*broker)->pid();
  const double cpu0 = tb::ProcessCpuSeconds(pid), self0 = tb::ProcessCpuSeconds(0);
  CountingConsumer* c = consumer->get();
  auto res = tb::ProduceAndPace(events, *addr, pace,
                                [c](std::vector<int64_t>* read, std::vector<int64_t>* stored) {
                                  // It stores nothing: what it has read is what it is done with.
                                  if (auto st = c->Progress(read); !st) return st;
                                  *stored = *read;
                                  return tally::Ok();
                                });
  r.server_cpu_s = tb::ProcessCpuSeconds(pid) - cpu0;
  r.client_cpu_s = tb::ProcessCpuSeconds(0) - self0;
  if (!res) {
    r.why_invalid = res.error().message;
    return r;
  }
  r.pace = *res;
  r.consumed = static_cast<double>(c->consumed());
  r.trimmed = static_cast<double>(c->errors());
  if (c->errors() != 0) {
    r.why_invalid = "consumer errors (trimmed log?): " + std::to_string(c->errors());
  } else if (c->consumed() != static_cast<int64_t>(events.events.size())) {
    r.why_invalid = "consumed " + std::to_string(c->consumed());
  } else {
    r.valid = true;
  }
  consumer->reset();
  (*broker)->Stop();
  return r;
}

void PrintRow(const char* what, int run, const RunResult& r) {
  if (!r.valid) {
    std::printf("| %s | %d | INVALID: %s | | | | | |\n", what, run, r.why_invalid.c_str());
    return;
  }
  std::printf("| %s | %d | %.0f | %.1f | %.2f | %.2f | %.2f / %.2f | %.0f%% |\n", what, run,
              r.eps(), r.mbps(), r.pace.seconds, r.pace.produce_seconds, r.server_cpu_s,
              r.client_cpu_s, 100.0 * r.pace.blocked_seconds / r.pace.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "End-to-end ingest benchmark of tallyd on its embedded broker (see "
      "docs/benchmarks.md)."};
  Args args;
  app.add_option("--events", args.events, "Generated events per run")->capture_default_str();
  app.add_option("--partitions", args.partitions, "Partitions of the events topic")
      ->capture_default_str();
  app.add_option("--runs", args.runs, "Runs (each: baseline, then tally)")->capture_default_str();
  app.add_option("--max-lag-mb", args.max_lag_mb,
                 "Most MB per partition produced but not yet read by the consumer (the mock broker "
                 "keeps ~5 MB)")
      ->capture_default_str();
  app.add_option("--compression", args.compression, "Producer compression.type")
      ->capture_default_str();
  app.add_flag("!--no-baseline", args.baseline, "Skip the plain-consumer baseline");
  app.add_flag("!--no-tally", args.tally, "Run only the baseline");
  app.add_flag("--keep", args.keep, "Keep the temporary data dirs and logs");
  app.add_option("--tallyd-arg", args.tallyd_args, "Extra tallyd flag (repeatable)")
      ->allow_extra_args(false);
  CLI11_PARSE(app, argc, argv);

  std::printf("# ingest_bench\n\nmachine: %s\nload average before: %s\n",
              tb::MachineSummary().c_str(), tb::LoadAverage().c_str());
  tally::gen::GenOptions gen;
  gen.events = args.events;
  gen.end_day = "2026-01-31";
  gen.days = 90;
  auto t0 = tb::SteadyClock::now();
  tb::EventSet events = tb::GenerateEvents(gen, args.partitions);
  std::vector<int64_t> per_partition(args.partitions, 0);
  for (const auto& e : events.events) ++per_partition[e.partition];
  std::printf("events: %zu (%.1f MB of JSON, %.0f B/event), generated in %.1f s; per partition:",
              events.events.size(), events.value_bytes / 1e6,
              static_cast<double>(events.value_bytes) / std::max<size_t>(1, events.events.size()),
              std::chrono::duration<double>(tb::SteadyClock::now() - t0).count());
  for (int64_t n : per_partition) std::printf(" %lld", static_cast<long long>(n));
  std::printf(
      "\npacing: at most %.1f MB produced but not yet read per partition, compression %s\n\n",
      args.max_lag_mb, args.compression.c_str());
  std::fflush(stdout);

  tb::PaceOptions pace;
  pace.max_lag_bytes = args.max_lag_mb * 1024 * 1024;
  pace.compression = args.compression;

  std::vector<RunResult> tally_runs, base_runs;
  std::printf(
      "| what | run | events/s | MB/s | seconds | produce s | CPU s server / bench | "
      "producer blocked |\n|---|---|---|---|---|---|---|---|\n");
  for (int run = 1; run <= args.runs; ++run) {
    if (args.baseline) {
      base_runs.push_back(RunBaseline(args, events, pace));
      PrintRow("baseline", run, base_runs.back());
      std::fflush(stdout);
    }
    if (args.tally) {
      tally_runs.push_back(RunTally(args, events, pace));
      PrintRow("tally", run, tally_runs.back());
      std::fflush(stdout);
    }
  }

  auto medians = [](const std::vector<RunResult>& runs, double* eps, double* mbps) {
    std::vector<double> e, m;
    for (const auto& r : runs) {
      if (!r.valid) continue;
      e.push_back(r.eps());
      m.push_back(r.mbps());
    }
    *eps = tb::Median(e);
    *mbps = tb::Median(m);
    return e.size();
  };
  double t_eps = 0, t_mbps = 0, b_eps = 0, b_mbps = 0;
  size_t t_valid = medians(tally_runs, &t_eps, &t_mbps);
  size_t b_valid = medians(base_runs, &b_eps, &b_mbps);
  std::printf("\nmedian tally:    %.0f events/s, %.1f MB/s (%zu valid runs of %zu)\n", t_eps,
              t_mbps, t_valid, tally_runs.size());
  if (args.baseline) {
    std::printf("median baseline: %.0f events/s, %.1f MB/s (%zu valid runs of %zu)\n", b_eps,
                b_mbps, b_valid, base_runs.size());
    if (b_eps > 0) std::printf("tally / baseline: %.2f\n", t_eps / b_eps);
  }
  for (const auto& r : tally_runs) {
    if (!r.valid) continue;
    std::printf("tally run: %.0f batches, mean batch apply %.1f ms, apply time %.1f%% of the run\n",
                r.batches, r.batches > 0 ? 1000 * r.apply_s / r.batches : 0,
                100 * r.apply_s / r.pace.seconds);
  }
  std::printf("goal: >= 300000 events/s -> %s\nload average after: %s\n",
              t_valid && t_eps >= 300000 ? "met" : "NOT met", tb::LoadAverage().c_str());
  return t_valid == tally_runs.size() ? 0 : 1;
}
