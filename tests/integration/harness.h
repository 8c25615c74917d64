#pragma once
// Test harness for tally's end-to-end tests: real processes (`tally broker`, `tallyd`), real
// sockets, a Kafka producer and a small HTTP client.
//
//   tally::integration::Stack stack;                       // temp dir, removed at the end
//   ASSERT_TRUE(stack.StartBroker(4));                     // `tally broker --partitions 4`
//   stack.keys().push_back(KeySpec::Admin("admin", "t0k"));
//   ASSERT_TRUE(stack.StartTallyd());                      // waits for its port file
//   ASSERT_TRUE(stack.Produce(lines));                     // key = workspace id
//   ASSERT_TRUE(stack.WaitForCatchUp(std::chrono::seconds(60)));
//   auto r = stack.http().Send("GET", "/readyz");          // Result<HttpResponse>
//
// Functions returning ::testing::AssertionResult explain a failure in their message (with the
// tail of the relevant process log), so `ASSERT_TRUE(f())` is enough. Not thread-safe.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/partition_reader.h"

namespace tally::kafka {
class EmbeddedBroker;
class Producer;
}  // namespace tally::kafka
typedef struct rd_kafka_s rd_kafka_t;

namespace tally::integration {

using Millis = std::chrono::milliseconds;

// Paths of the binaries under test: $TALLY_IT_TALLY / $TALLY_IT_TALLYD when set (to run the tests
// against another build), else from compile definitions (empty when not built).
std::string TallyBinary();
std::string TallydBinary();

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// Keep() was called or TALLY_IT_KEEP is set in the environment.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A child process started with fork/execv. Its stdout and stderr are appended to
// `<log_base>.out` / `<log_base>.err`. The destructor SIGKILLs and reaps it if still running.
// The child also gets SIGKILL if the test process dies (PR_SET_PDEATHSIG).
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // argv[0] is the executable path. kUnavailable if fork/exec fails (exec failure shows up as
  // exit code 127 and a message in the .err log).
  Status Start(const std::vector<std::string>& argv, const std::string& log_base);
  // True while the child runs; reaps it (recording its status) once it has exited.
  bool Running();
  // Sends `sig` (no-op when not running).
  void Signal(int sig);
  // Waits up to `timeout` for the child to exit; returns its waitpid status, or kUnavailable on
  // timeout.
  Result<int> Wait(Millis timeout);
  // Sends `sig`, then waits (SIGKILL after 10 s if it is still there).
  void Stop(int sig);
  // "exit code 3", "killed by signal 9", "running".
  std::string Describe();
  // The last `bytes` bytes of the .err and .out logs, for failure messages.
  std::string LogTail(size_t bytes = 3000) const;
  std::string CommandLine() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::vector<std::string> argv_;
  std::string log_base_;
};

// Waits until `path` exists and holds a non-empty line; returns its first line, trimmed. Fails
// early (with the process log) when `watch` is given and exits meanwhile.
Result<std::string> WaitForFile(const std::string& path, Millis timeout, Process* watch = nullptr);

std::string ReadFileOrEmpty(const std::string& path);

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  // The first header named `name` (lowercase), or "".
  std::string Header(std::string_view name) const;
};

// A synchronous HTTP/1.1 client on one keep-alive connection: lib/http/testing's HttpClient, plus
// reconnection (once per request) when the server closed the connection or was restarted.
class HttpClient {
 public:
  HttpClient();
  explicit HttpClient(std::string host_port);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void Reset(std::string host_port);  // drops the connection, targets another server
  const std::string& host_port() const { return host_port_; }

  // Sends one request (`target` = path and query string); a non-empty body gets
  // Content-Type: application/json. kUnavailable on I/O errors (every socket operation times out
  // after 10 s).
  Result<HttpResponse> Send(std::string_view method, std::string_view target,
                            const std::vector<std::pair<std::string, std::string>>& headers = {},
                            std::string_view body = {});

 private:
  struct Conn;
  std::string host_port_;
  std::unique_ptr<Conn> conn_;
};

// Percent-encodes a query-string component (RFC 3986 unreserved characters kept).
std::string UrlEncode(std::string_view s);

// One API key of the keys file (docs/design.md "Access"): the file stores Sha256Hex(token).
struct KeySpec {
  static KeySpec Admin(std::string name, std::string token) {
    KeySpec k;
    k.name = std::move(name);
    k.token = std::move(token);
    k.admin = true;
    return k;
  }
  std::string name;
  std::string token;
  std::string user_id;
  std::map<std::string, std::string> workspaces;  // workspace id -> "owner" | "member"
  std::vector<std::string> organizations;
  bool admin = false;
};
// Writes the keys file: every key, then one [[workspaces]] entry per declared binding
// (workspace id -> organization id).
Status WriteKeysFile(const std::string& path, const std::vector<KeySpec>& keys,
                     const std::map<std::string, std::string>& bindings = {});

// A message read back from a topic (the dead-letter topic in tests): partition, offset, key,
// value, headers; Header(name) gives a header's value or "".
using ConsumedMessage = kafka::Record;

// Reads every message of `topic` (all partitions, low to high watermark at call time) with a
// group-less reader (kafka::ReadTopicToEnd). kUnavailable on timeout; an unknown topic yields
// an empty list.
Result<std::vector<ConsumedMessage>> ReadTopic(const std::string& brokers, const std::string& topic,
                                               Millis timeout);

// Sum of the samples of Prometheus metric `name` in `text` whose labels contain every
// `label="value"` pair of `labels` (e.g. {"reason=\"bad_time\""}). nullopt when no sample.
std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                const std::vector<std::string>& labels = {});

// Waits up to `timeout` for `process` to exit with `code`. On timeout it is killed; the failure
// names the command, how it ended and the tail of its log.
::testing::AssertionResult ExitsWith(Process& process, int code, Millis timeout);

// Everything one end-to-end test needs: a temp dir, `tally broker`, `tallyd`, a producer, an
// HTTP client to tallyd.
class Stack {
 public:
  static constexpr const char* kTopic = "usage-events";
  static constexpr const char* kDlqTopic = "usage-events.dlq";
  static constexpr const char* kNow = "2026-03-01T12:00:00Z";  // tallyd --now
  static constexpr const char* kToday = "2026-03-01";

  Stack();
  ~Stack();

  // Keys written to the keys file by the next StartTallyd().
  std::vector<KeySpec>& keys() { return keys_; }
  // Workspace -> organization bindings declared in that keys file ([[workspaces]]).
  std::map<std::string, std::string>& bindings() { return bindings_; }

  ::testing::AssertionResult StartBroker(int partitions);
  // `tally broker` with its default partition count (no --partitions flag).
  ::testing::AssertionResult StartBrokerWithDefaults();
  // The same embedded broker (kTopic with `partitions`, its .dlq and .cluster topics), with
  // `brokers` brokers, but hosted in this process, so that the test can inject faults through
  // in_process_broker() (brokers down, leader changes, request errors, round-trip time).
  ::testing::AssertionResult StartInProcessBroker(int partitions, int brokers);
  kafka::EmbeddedBroker* in_process_broker() { return in_process_broker_.get(); }
  // The file `tally broker --addr-file` writes its address to (for `tally --broker-addr-file`).
  std::string broker_addr_file() const { return dir_.File("broker.addr"); }
  // tallyd's --cache-ttl for the next StartTallyd() (default 0: every query reaches the views).
  void set_cache_ttl(int seconds) { cache_ttl_ = seconds; }
  int cache_ttl() const { return cache_ttl_; }
  // Consumer group of the next StartTallyd() (default "tally-it").
  void set_group(std::string group) { group_ = std::move(group); }
  const std::string& group() const { return group_; }
  // Starts tallyd on the stack's data dir (the same one on every restart).
  ::testing::AssertionResult StartTallyd(const std::vector<std::string>& extra_args = {});
  // kill -<sig> tallyd and reap it.
  void StopTallyd(int sig);
  bool TallydRunning() { return tallyd_.Running(); }
  // Polls /readyz until it answers 200 (tallyd has its partitions), without looking at offsets.
  ::testing::AssertionResult WaitForReady(Millis timeout);

  // Starts `tally <args...>` in the background; its output goes to `<log_name>.out/.err` in the
  // temp dir. Wait for it with ExitsWith().
  ::testing::AssertionResult StartTally(Process* process, const std::vector<std::string>& args,
                                        const std::string& log_name);
  // Runs `tally <args...>` to its end: success if it exits 0 within `timeout` (else it is
  // killed, and the failure names the command, how it ended and its log).
  ::testing::AssertionResult RunTally(const std::vector<std::string>& args,
                                      const std::string& log_name, Millis timeout);

  // Produces each line with key = its workspace id (`keys[i]`, may be empty) and flushes.
  ::testing::AssertionResult Produce(const std::vector<std::string>& lines,
                                     const std::vector<std::string>& keys);
  // Produces `lines` in chunks of `chunk`, waiting for catch-up after each chunk, so that no
  // partition of the embedded broker (which keeps only its newest 5 MB) is trimmed before
  // tallyd has read it.
  ::testing::AssertionResult ProducePaced(const std::vector<std::string>& lines,
                                          const std::vector<std::string>& keys, size_t chunk,
                                          Millis catch_up_timeout);
  // Polls /readyz until ready and every partition's next_offset equals its high watermark.
  ::testing::AssertionResult WaitForCatchUp(Millis timeout);

  struct IngestState {
    bool answered = false;   // /readyz and the watermarks could be read
    bool ready = false;      // what /readyz says
    bool caught_up = false;  // ready, and next_offset == high watermark on every partition
    int64_t lag = 0;         // sum over partitions of high watermark - next_offset
    std::string description;
  };
  IngestState ReadIngestState();

  // GET /metrics text ("" on error).
  std::string MetricsText();

  const std::string& bootstrap() const { return bootstrap_; }
  HttpClient& http() { return http_; }
  TempDir& dir() { return dir_; }
  Process& tallyd() { return tallyd_; }
  Process& broker() { return broker_; }
  int tallyd_starts() const { return tallyd_starts_; }

 private:
  ::testing::AssertionResult StartBrokerWith(const std::vector<std::string>& extra_args);
  // The test's own clients of the broker at bootstrap_: the producer and meta_.
  ::testing::AssertionResult ConnectClients();
  ::testing::AssertionResult ConnectMetadataClient();

  TempDir dir_;
  Process broker_;
  std::unique_ptr<kafka::EmbeddedBroker> in_process_broker_;
  Process tallyd_;
  std::string bootstrap_;
  std::vector<KeySpec> keys_;
  std::map<std::string, std::string> bindings_;
  std::string group_ = "tally-it";
  int cache_ttl_ = 0;
  HttpClient http_;
  std::unique_ptr<kafka::Producer> producer_;
  rd_kafka_t* meta_ = nullptr;  // owned; a long-lived client for fast watermark queries
  int partitions_ = 0;          // of kTopic, once known
  int tallyd_starts_ = 0;
};

// Polls GET /readyz through `http` until it answers `status` (200 or 503); `body` gets that
// answer. The failure quotes the last answer.
::testing::AssertionResult WaitForReadyz(HttpClient& http, int status, Millis timeout,
                                         std::string* body = nullptr);

// Produces `lines` (key = `keys[i]`) through `stack` from another thread, so that the test can
// inject faults or kill processes meanwhile; Join() waits for the broker's acknowledgement of
// every line. Only Join() may be called on `stack`'s producer meanwhile.
class BackgroundProduce {
 public:
  BackgroundProduce(Stack* stack, std::vector<std::string> lines, std::vector<std::string> keys);
  ~BackgroundProduce();
  ::testing::AssertionResult Join();

 private:
  std::vector<std::string> lines_, keys_;
  ::testing::AssertionResult result_;
  std::thread thread_;
};

// Appends `n` valid generated events (`tally gen` with `seed`, about 550 bytes each, ending on
// Stack::kToday) to `lines` and their keys (workspace ids) to `keys`.
void GenerateEvents(int64_t n, uint64_t seed, std::vector<std::string>* lines,
                    std::vector<std::string>* keys);

// The seed of a test's random choices (kill moments): TALLY_IT_SEED if set, else a random one.
// Printed to stderr with `tag`, so that a failing run can be replayed.
uint64_t TestSeed(const char* tag);

}  // namespace tally::integration
