#pragma once
// Shared code of the query-latency benchmarks that need more data than the embedded broker can
// take in reasonable time (requests_bench, superagents_bench): generated events are parsed and
// folded in-process (EventParser -> Aggregator -> RocksDB, like pipeline_bench, in batches of
// tallyd's default --batch-max) into `<data-dir>/db`, then tallyd is started on that data dir
// (embedded broker, empty log) and only queried. The views are the ones tallyd's own ingest
// writes (same Aggregator, same batch size); only Kafka is skipped.
//
//   tally::bench::PreloadOptions po{.gen = gen_options, .data_dir = dir + "/data"};
//   auto loaded = tally::bench::Preload(po, [&](const tally::event::UsageEvent& e) { ... });
//   auto server = tally::bench::TallydOnDir::Start({.binary = TALLYD_PATH,
//                                                   .data_dir = dir + "/data", ...});
//   tally::bench::Sample s;
//   server->Get(target, headers, &s);   // s.client_ms, s.server_ms (Server-Timing)
//
// Benchmarks only: not thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "common/result.h"
#include "event/usage_event.h"
#include "gen/generator.h"
#include "http/testing/http_client.h"

namespace tally::bench {

struct PreloadOptions {
  gen::GenOptions gen;
  std::string data_dir;        // the store goes to <data_dir>/db (created; must not exist yet)
  size_t batch_size = 20'000;  // events per Aggregator::Apply (tallyd's default --batch-max)
};

struct PreloadStats {
  int64_t lines = 0;
  int64_t applied = 0;
  int64_t rejected = 0;
  uint64_t json_bytes = 0;
  double seconds = 0;        // wall time, generation included
  double apply_seconds = 0;  // time in Aggregator::Apply
  uint64_t db_bytes = 0;     // size of <data_dir>/db after closing the store
};

// Generates options.gen (in a second thread), parses and applies every event; `on_event` (may be
// empty) sees each parsed event, in stream order, before it is applied. Closes the store.
Result<PreloadStats> Preload(const PreloadOptions& options,
                             const std::function<void(const event::UsageEvent&)>& on_event);

// tallyd on an existing data dir (embedded broker, no events produced).
struct TallydOnDirOptions {
  std::string binary;
  std::string data_dir;
  std::string keys_path;
  std::string now;  // --now
  int cache_ttl_s = 0;
  std::string log_path;
  std::vector<std::string> extra_args;
};

struct Sample {
  double client_ms = 0;
  double server_ms = -1;  // Server-Timing app;dur, -1 if missing
};

class TallydOnDir {
 public:
  static Result<std::unique_ptr<TallydOnDir>> Start(const TallydOnDirOptions& options);
  ~TallydOnDir();
  // GET on the keep-alive connection; fills *sample (client: send -> response read).
  Result<http::testing::HttpReply> Get(const std::string& target, const http::StringPairs& headers,
                                       Sample* sample);
  ChildProcess& process() { return *process_; }
  // The keep-alive connection Get() uses (for /readyz and /metrics as well).
  http::testing::HttpClient& client() { return *client_; }
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  // Seconds from spawn to /readyz 200 (store open and label directory load included).
  double startup_seconds() const { return startup_s_; }

 private:
  TallydOnDir() = default;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<http::testing::HttpClient> client_;
  std::string host_;
  uint16_t port_ = 0;
  double startup_s_ = 0;
};

// Bytes under a directory (recursive).
uint64_t DirectoryBytes(const std::string& path);

}  // namespace tally::bench
