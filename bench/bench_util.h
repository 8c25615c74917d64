#pragma once
// Shared code of the end-to-end benchmarks (ingest_bench, query_bench): child processes,
// tallyd start-up, generated events held in memory, and the producer paced on the consumer's
// progress (librdkafka's mock cluster trims each partition to its newest ~5 MB, so a producer
// that runs ahead of the consumer would make it lose events).
//
//   auto events = tally::bench::GenerateEvents(gen_options, /*partitions=*/4);
//   auto tallyd = tally::bench::Tallyd::Start({.binary = TALLYD_PATH, .partitions = 4});
//   auto result = tally::bench::ProduceAndPace(events, (*tallyd)->broker(), pace,
//                                              tally::bench::ReadyzProgress(&(*tallyd)->client()));
//   // result->seconds: first produce -> last event consumed
//
// Benchmarks only: not thread-safe unless stated, errors are Result/Status as elsewhere.

#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "gen/generator.h"
#include "http/testing/http_client.h"

namespace tally::bench {

using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------- processes and files

// A child process (fork/execvp) with stdout+stderr appended to `log_path`. Killed (SIGKILL) if
// the benchmark dies (PR_SET_PDEATHSIG). The destructor stops it (SIGTERM, then SIGKILL).
class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv,
                                                     const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool Running();
  // SIGTERM, wait up to timeout_ms, then SIGKILL. Idempotent.
  void Stop(int timeout_ms = 10'000);
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string log_path_;
};

// A fresh directory under $TMPDIR (default /tmp); removed by the destructor unless keep().
class TempDir {
 public:
  explicit TempDir(std::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// Waits until `path` holds a non-empty first line and returns it trimmed. kUnavailable on
// timeout or when `watch` exits first.
Result<std::string> WaitForFile(const std::string& path, int timeout_ms,
                                ChildProcess* watch = nullptr);
// The embedded broker's address from the file `tally broker --addr-file` or tallyd
// (<data-dir>/broker.addr) writes (kafka::ReadBrokerAddressFile), waiting up to `timeout_ms`.
// When `watch` exits first, the error ends with the tail of its log.
Result<std::string> WaitForBrokerAddress(const std::string& path, int timeout_ms,
                                         ChildProcess* watch = nullptr);
// The last `bytes` bytes of a file ("" if unreadable).
std::string FileTail(const std::string& path, size_t bytes = 2000);

// A started tallyd's HTTP address and a client connected to it.
struct TallydEndpoint {
  std::string host;
  uint16_t port = 0;
  std::unique_ptr<http::testing::HttpClient> client;
};
// Connects to the tallyd `process` that wrote `listen` ("HOST:PORT", from its --port-file) and
// waits until its /readyz answers 200. kUnavailable, with the end of its log, when it exits
// first or is not ready `timeout_s` seconds after `since`.
Result<TallydEndpoint> ConnectWhenReady(ChildProcess* process, const std::string& listen,
                                        SteadyClock::time_point since, double timeout_s);

// ---------------------------------------------------------------- tallyd

inline constexpr const char* kBenchToken = "bench-admin-token";

struct TallydOptions {
  std::string binary;   // path of tallyd
  int partitions = 4;   // --partitions of the embedded broker
  std::string now;      // --now (RFC 3339), empty = real time
  int cache_ttl_s = 0;  // --cache-ttl
  std::vector<std::string> extra_args;
  bool keep_data_dir = false;  // leave the data dir (and the log) behind for inspection
};

// tallyd on the embedded broker, in a temporary data dir, with an admin key for kBenchToken.
// Start() waits until the HTTP port and broker.addr are written and /readyz answers 200.
class Tallyd {
 public:
  static Result<std::unique_ptr<Tallyd>> Start(const TallydOptions& options);
  ~Tallyd();  // stops the process, removes the data dir

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  const std::string& broker() const { return broker_; }  // bootstrap address of its broker
  const std::string& data_dir() const { return dir_->path(); }
  // A keep-alive connection for /readyz and /metrics polling.
  http::testing::HttpClient& client() { return *client_; }
  ChildProcess& process() { return *process_; }

 private:
  Tallyd() = default;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<http::testing::HttpClient> client_;
  std::string host_, broker_;
  uint16_t port_ = 0;
};

// Per-partition next offsets to consume (stored in RocksDB) from tallyd's GET /readyz
// (details.ingest.partitions), and, if `read` is given, the read offsets (taken from the broker).
// The vectors are resized to `partitions`; partitions not reported stay 0.
Status ReadyzOffsets(http::testing::HttpClient& client, int partitions, std::vector<int64_t>* out,
                     std::vector<int64_t>* read = nullptr);

// Value of an unlabelled sample `name` in Prometheus text, or kNotFound.
Result<double> PrometheusValue(std::string_view text, std::string_view name);

// ---------------------------------------------------------------- events

// Generated events held in one arena (so the timed loop only reads memory).
struct EventSet {
  struct Event {
    uint64_t offset;  // of the value in `arena`; the key follows the value
    uint32_t value_len;
    uint32_t key_len;
    int32_t partition;
  };
  std::string arena;
  std::vector<Event> events;
  int partitions = 1;
  uint64_t value_bytes = 0;
  std::string_view value(const Event& e) const { return {arena.data() + e.offset, e.value_len}; }
  std::string_view key(const Event& e) const {
    return {arena.data() + e.offset + e.value_len, e.key_len};
  }
};

// Runs the generator; partitions are assigned like librdkafka's default partitioner
// (consistent_random: CRC32 of the key). `on_line` (optional) sees every line.
EventSet GenerateEvents(const gen::GenOptions& options, int partitions,
                        const std::function<void(const gen::GeneratedLine&)>& on_line = {});

// ---------------------------------------------------------------- paced producing

struct PaceOptions {
  std::string topic = "usage-events";
  // Most value bytes produced but not yet consumed per partition (the broker keeps ~5 MB).
  double max_lag_bytes = 2.5 * 1024 * 1024;
  int min_refresh_us = 2000;      // do not ask the consumer for its progress more often than this
  int stall_timeout_ms = 60'000;  // no consumer progress for this long: give up
  std::string compression = "none";
  int linger_ms = 5;
};

// Fills, per partition (size = partitions), `read` with the next offset after what the consumer
// has taken from the broker (safe from the broker's trimming) and `stored` with the next offset
// after what it has finished with (for tallyd: stored in RocksDB). stored <= read.
using ProgressFn = std::function<Status(std::vector<int64_t>* read, std::vector<int64_t>* stored)>;

struct PaceResult {
  double seconds = 0;          // first produce -> every event seen consumed
  double produce_seconds = 0;  // first produce -> last produce call returned
  double blocked_seconds = 0;  // time the producer waited on the consumer (pacing)
  int64_t events = 0;
  uint64_t bytes = 0;  // value bytes
  int64_t progress_polls = 0;
};

// Produces every event (key, value, explicit partition) to `brokers`, never letting a partition's
// unread bytes (produced, not yet taken by the consumer) exceed options.max_lag_bytes, then
// waits until `progress` shows every event stored.
// Offsets are assumed to start at 0 in every partition (a fresh broker).
Result<PaceResult> ProduceAndPace(const EventSet& events, const std::string& brokers,
                                  const PaceOptions& options, const ProgressFn& progress);

// A ProgressFn over tallyd's /readyz.
ProgressFn ReadyzProgress(http::testing::HttpClient* client, int partitions);

// ---------------------------------------------------------------- ingest in the background

// `tally produce --rate` of generated executions-mix events (every optional field: the costliest
// events) into a running tallyd's broker, while a benchmark measures something else (query
// latency under ingest). The events are generated up front into `dir`: rate x seconds of them,
// over the `days` ending the day before `queried_end_day` (tallyd's clock is noon of that day, so
// 1 day is live traffic on the open buckets). With the seed of the benchmark's own events and
// first_id past them, they go to the same workspaces and never repeat an id.
struct BackgroundIngestOptions {
  std::string cli;      // path of the tally CLI
  std::string brokers;  // tallyd's broker
  std::string host;     // tallyd's HTTP address, for its applied-events count
  uint16_t port = 0;
  std::string dir;  // where the NDJSON file and the producer's log go
  double rate = 30'000;
  int seconds = 120;  // events for this long at `rate`; producing stops there at the latest
  std::string queried_end_day = "2026-01-31";
  int days = 1;
  uint64_t seed = 42;
  int64_t first_id = 0;
  std::vector<std::string> gen_args;  // more `tally gen` flags (--users, --workspaces, ...)
};

// Adds --ingest-rate (into *rate; the help names `into`, the tallyd that receives the events)
// and --ingest-days (into *days) to a benchmark's flags.
void AddBackgroundIngestFlags(CLI::App* app, double* rate, int* days, const std::string& into);

class BackgroundIngest {
 public:
  // Generates the events, starts producing, and gives the producer 3 s to reach its rate; the
  // measured window starts then. kUnavailable if the CLI or tallyd's /metrics fails,
  // kInvalidArgument for a bad queried_end_day.
  static Result<std::unique_ptr<BackgroundIngest>> Start(const BackgroundIngestOptions& options);
  ~BackgroundIngest() { producer_->Stop(2000); }
  // Ends the window and stops producing: the events/s tallyd applied during the window.
  Result<double> Finish();

 private:
  BackgroundIngest() = default;
  std::unique_ptr<ChildProcess> producer_;
  std::string host_;
  uint16_t port_ = 0;
  double applied_before_ = 0;
  SteadyClock::time_point from_;
};

// Starts *out (left null when options.rate is 0). False, after printing the error, if it fails.
bool StartBackgroundIngest(const BackgroundIngestOptions& options,
                           std::unique_ptr<BackgroundIngest>* out);
// Finishes *ingest if set, prints "ingest into <into> while measuring: R events/s applied (asked
// <asked>)" and resets it. False, after printing the error, if Finish fails.
bool FinishBackgroundIngest(std::unique_ptr<BackgroundIngest>* ingest, double asked,
                            const std::string& into);
// Adds the generated world's dimensions as flags: --users, --agents (help: `agents_help`),
// --workflows, --workspaces, --organizations, --days and --end-day, into `world`, whose values
// are the defaults shown.
void AddWorldFlags(CLI::App* app, gen::GenOptions* world,
                   const std::string& agents_help = "Generated agents");
// The `tally gen` flags that give a stream the shape of generated data: the same users, agents,
// workspaces and organizations (with the same seed).
std::vector<std::string> GenShapeArgs(int users, int agents, int workspaces, int organizations);

// ---------------------------------------------------------------- statistics

// q in [0, 1], nearest-rank on a sorted copy. 0 for an empty input.
double Percentile(std::vector<double> values, double q);
double Median(std::vector<double> values);

// "nproc=2, AMD EPYC, 23.5 GiB RAM" plus the UTC date, for the report header.
std::string MachineSummary();

// CPU seconds (user + system) used so far by process `pid` (0: this process), from
// /proc/<pid>/stat (stat(5) fields 14 and 15); -1 when unreadable.
double ProcessCpuSeconds(pid_t pid);

// The first three fields of /proc/loadavg.
std::string LoadAverage();

// The duration in a Server-Timing header value ("app;dur=0.123" -> 0.123); -1 if absent.
double ParseServerTiming(std::string_view value);

}  // namespace tally::bench
