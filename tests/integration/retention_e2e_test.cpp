// The embedded broker's retention end to end: a producer that outruns tallyd must not make it
// lose events.
//
// librdkafka's mock cluster (`tally broker`, tallyd's in-process broker) keeps only the newest
// 5 MiB (or 100k batches) of each partition. Events a producer writes faster than tallyd reads
// them are trimmed before tallyd sees them (tally_log_trimmed_total). These tests hold the stack
// to what a new user expects:
//  - `tally broker` has enough partitions by default, and `tally produce` waits while the
//    consumer group (`--group`) is behind on a partition of the embedded broker, so a
//    million-event file produced as fast as possible arrives whole;
//  - POST /v1/events answers 503 with Retry-After (nothing published) while the broker is near
//    its retention for tallyd's group, and a client that retries gets every event counted;
//  - a tallyd killed with SIGKILL is ready again within seconds and loses nothing;
//  - `tally produce` against a broker nobody reads waits (and says so) instead of overwriting.
// Every test compares the views with the reference model computed from the raw events.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kAdminToken = "it-retention-admin";
constexpr const char* kBatchType = "application/cloudevents-batch+json";

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

double Metric(const std::string& metrics, const char* name) {
  return MetricSum(metrics, name).value_or(-1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Feeds every non-empty line of `path` to `ref`; returns the number of lines.
size_t AddFile(const std::string& path, ReferenceModel* ref) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << path;
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ref->Add(line);
    ++n;
  }
  return n;
}

// `tally gen` of `events` lines ending on Stack::kToday (tallyd's --now) into `file`.
::testing::AssertionResult Gen(Stack& stack, int64_t events, uint64_t seed,
                               const std::string& file) {
  auto t0 = SteadyClock::now();
  auto r = stack.RunTally({"gen", "-n", std::to_string(events), "--seed", std::to_string(seed),
                           "--end-day", Stack::kToday, "-o", file},
                          "gen", Millis(120'000));
  std::fprintf(stderr, "[retention] tally gen -n %lld: %.1f s\n", static_cast<long long>(events),
               Seconds(t0));
  return r;
}

// `tally produce` of `file` to the stack's broker, waiting for the stack's consumer group.
std::vector<std::string> ProduceArgs(Stack& stack, const std::string& file,
                                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"produce", "--broker-addr-file", stack.broker_addr_file(),
                                   "--group", stack.group()};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(file);
  return args;
}

// Waits for `produce` to exit 0, printing tallyd's progress every 10 s.
::testing::AssertionResult ProduceFinishes(Stack& stack, Process& produce, Millis timeout) {
  auto t0 = SteadyClock::now();
  auto deadline = t0 + timeout;
  while (produce.Running() && SteadyClock::now() < deadline) {
    for (int i = 0; i < 100 && produce.Running(); ++i) std::this_thread::sleep_for(Millis(100));
    if (!produce.Running()) break;
    std::string metrics = stack.MetricsText();
    std::fprintf(stderr,
                 "[retention] %.0f s: tally produce still running; tallyd consumed %.0f, "
                 "trimmed %.0f\n",
                 Seconds(t0), Metric(metrics, "tally_events_consumed_total"),
                 Metric(metrics, "tally_log_trimmed_total"));
  }
  return ExitsWith(produce, 0, Millis(0));
}

// The ingest counters of /metrics after catch-up: nothing trimmed, every line consumed once and
// judged as the reference judged it.
void ExpectCounters(Stack& stack, const ReferenceModel& ref, size_t lines) {
  std::string metrics = stack.MetricsText();
  ASSERT_FALSE(metrics.empty()) << "GET /metrics failed";
  EXPECT_EQ(Metric(metrics, "tally_log_trimmed_total"), 0)
      << "events were trimmed from the broker before tallyd read them\n"
      << stack.tallyd().LogTail();
  EXPECT_EQ(Metric(metrics, "tally_events_consumed_total"), static_cast<double>(lines));
  EXPECT_EQ(Metric(metrics, "tally_events_applied_total"), static_cast<double>(ref.accepted()));
  EXPECT_EQ(Metric(metrics, "tally_events_duplicate_total"), static_cast<double>(ref.duplicates()));
  // tally_events_rejected_total{reason} has no sample before the first rejection.
  EXPECT_EQ(MetricSum(metrics, "tally_events_rejected_total").value_or(0),
            static_cast<double>(ref.invalid()));
}

// The views against the reference: for every workspace, the totals of every metric of both
// entities over its whole history (and the workflows' average duration over 90 days); for the
// busiest, a middle and the quietest workspace, every `stride`-th combination of
// AllCombinations (group_by user and date included) with its most active user as filter.
void ExpectViewsEqualReference(Stack& stack, const ReferenceModel& ref, size_t stride) {
  auto t0 = SteadyClock::now();
  std::vector<std::string> wss = ref.WorkspacesByActivity();
  ASSERT_FALSE(wss.empty());
  std::vector<MetricsCall> calls;
  for (const std::string& ws : wss) {
    for (const char* entity : {"agents", "workflows"}) {
      for (const char* metric : {"executions", "created", "copies", "shares"}) {
        MetricsCall c;
        c.query.workspace_id = ws;
        c.query.entity = entity;
        c.query.metric = metric;
        c.query.aggregation = "count";
        c.query.period = "all";
        calls.push_back(c);
      }
    }
    MetricsCall c;
    c.query.workspace_id = ws;
    c.query.entity = "workflows";
    c.query.metric = "avg_duration";
    c.query.aggregation = "avg";
    c.query.period = "90d";
    calls.push_back(c);
  }
  std::vector<std::string> chosen = {wss.front(), wss[wss.size() / 2], wss.back()};
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  for (const std::string& ws : chosen) {
    std::vector<MetricsCall> all = AllCombinations(ws, ref.UsersByActivity(ws).front());
    for (size_t i = 0; i < all.size(); i += stride) calls.push_back(all[i]);
  }
  int mismatches = CheckAll(stack.http(), kAdminToken, ref, calls);
  std::fprintf(stderr, "[retention] %zu metrics requests over %zu workspaces compared in %.1f s\n",
               calls.size(), wss.size(), Seconds(t0));
  EXPECT_EQ(mismatches, 0);
}

// ---------------------------------------------------------------- HTTP flood

struct FloodResult {
  int64_t accepted = 0;  // events acknowledged with 202
  int64_t requests = 0;
  int64_t unavailable = 0;  // 503 answers
  int64_t io_errors = 0;
  double seconds = 0;
  std::string failure;  // first unexpected answer, or the deadline
  // The first 503.
  std::string retry_after;
  std::string unavailable_body;
  std::string unavailable_content_type;
};

// POSTs `lines` to tallyd's /v1/events as batches of `batch` events from `threads` client threads
// (one HTTP connection each), as fast as tallyd answers. The threads take the batches in order
// from a shared counter. A 503 is retried with the same batch after its Retry-After (seconds; 0.2
// s when absent), an I/O error after 0.2 s; any other answer but 202 fails the flood.
FloodResult Flood(const std::string& host_port, const std::vector<std::string>& lines, size_t batch,
                  int threads, Millis timeout) {
  FloodResult result;
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> accepted{0}, requests{0}, unavailable{0}, io_errors{0};
  const size_t batches = (lines.size() + batch - 1) / batch;
  auto t0 = SteadyClock::now();
  auto deadline = t0 + timeout;
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(mu);
    if (result.failure.empty()) result.failure = why;
    stop = true;
  };
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", std::string("Bearer ") + kAdminToken}, {"Content-Type", kBatchType}};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      HttpClient http(host_port);
      for (size_t b = next++; b < batches && !stop; b = next++) {
        const size_t begin = b * batch, end = std::min(lines.size(), begin + batch);
        std::string body = "[";
        for (size_t i = begin; i < end; ++i) body += (i > begin ? "," : "") + lines[i];
        body += "]";
        for (int attempt = 1;; ++attempt) {
          if (stop) return;
          if (SteadyClock::now() > deadline) {
            fail("batch " + std::to_string(b) + " of " + std::to_string(batches) +
                 " still not acknowledged after " + std::to_string(timeout.count()) + " ms (" +
                 std::to_string(attempt - 1) + " attempts)");
            return;
          }
          ++requests;
          Result<HttpResponse> r = http.Send("POST", "/v1/events", headers, body);
          if (!r) {
            if (++io_errors > 50) {
              fail("too many I/O errors; last: " + r.error().message);
              return;
            }
            std::this_thread::sleep_for(Millis(200));
            continue;
          }
          if (r->status == 202) {
            json j = json::parse(r->body, nullptr, false);
            if (!j.is_object() ||
                j.value("accepted", int64_t{-1}) != static_cast<int64_t>(end - begin)) {
              fail("batch " + std::to_string(b) + ": 202 with body " + r->body);
              return;
            }
            accepted += static_cast<int64_t>(end - begin);
            break;
          }
          if (r->status != 503) {
            fail("batch " + std::to_string(b) + ": status " + std::to_string(r->status) + " " +
                 r->body.substr(0, 2000));
            return;
          }
          std::string retry_after = r->Header("retry-after");
          if (unavailable++ == 0) {
            std::lock_guard lock(mu);
            result.retry_after = retry_after;
            result.unavailable_body = r->body;
            result.unavailable_content_type = r->Header("content-type");
          }
          double wait_s = 0.2;
          if (!retry_after.empty() &&
              std::all_of(retry_after.begin(), retry_after.end(),
                          [](unsigned char c) { return std::isdigit(c); })) {
            wait_s = std::min(5.0, std::max(0.05, std::atof(retry_after.c_str())));
          }
          std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  result.accepted = accepted;
  result.requests = requests;
  result.unavailable = unavailable;
  result.io_errors = io_errors;
  result.seconds = Seconds(t0);
  std::fprintf(stderr,
               "[retention] flood: %lld events acknowledged in %.1f s (%lld requests, %lld 503s, "
               "%lld I/O errors)\n",
               static_cast<long long>(result.accepted), result.seconds,
               static_cast<long long>(result.requests), static_cast<long long>(result.unavailable),
               static_cast<long long>(result.io_errors));
  if (result.unavailable > 0) {
    std::fprintf(stderr, "[retention] first 503: Retry-After '%s', %s body %s\n",
                 result.retry_after.c_str(), result.unavailable_content_type.c_str(),
                 result.unavailable_body.substr(0, 500).c_str());
  }
  return result;
}

// ---------------------------------------------------------------- tests

// A new user's first run: `tally broker` with its defaults, tallyd, a million generated events
// through `tally produce` as fast as it goes. Without holding back, the producer outruns tallyd
// and the broker trims most of the events before tallyd reads them.
TEST(RetentionE2E, MillionEventsThroughTallyProduceNothingTrimmed) {
  auto t0 = SteadyClock::now();
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBrokerWithDefaults());
  ASSERT_TRUE(stack.StartTallyd());
  const std::string file = stack.dir().File("events.ndjson");
  constexpr int64_t kEvents = 1'000'000;
  ASSERT_TRUE(Gen(stack, kEvents, 20260301, file));

  Process produce;
  auto t_produce = SteadyClock::now();
  ASSERT_TRUE(stack.StartTally(&produce, ProduceArgs(stack, file), "produce"));
  // The reference is computed while the events go through the stack.
  ReferenceModel ref(Stack::kToday);
  auto t_ref = SteadyClock::now();
  const size_t lines = AddFile(file, &ref);
  std::fprintf(stderr, "[retention] reference of %zu lines (%zu accepted) in %.1f s\n", lines,
               ref.accepted(), Seconds(t_ref));
  ASSERT_EQ(lines, static_cast<size_t>(kEvents));
  ASSERT_TRUE(ProduceFinishes(stack, produce, Millis(240'000)));
  std::fprintf(stderr, "[retention] tally produce exited 0 after %.1f s\n", Seconds(t_produce));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(180'000)));
  std::fprintf(stderr, "[retention] caught up %.1f s after the produce started\n",
               Seconds(t_produce));

  ExpectCounters(stack, ref, lines);
  ExpectViewsEqualReference(stack, ref, 16);
  std::fprintf(stderr, "[retention] total %.1f s\n", Seconds(t0));
}

// Floods POST /v1/events with `events` generated events (4 connections, 500-event batches,
// each 503 retried after its Retry-After) into a tallyd on a broker of `partitions` partitions
// (0: the broker's default), then checks that every event was acknowledged, nothing was
// trimmed, each event was published once and the views equal the reference. With
// `require_held_back`, at least one 503 must have come, with Retry-After and a JSON message.
void FloodAndCheck(int partitions, int events, uint64_t seed, bool require_held_back) {
  auto t0 = SteadyClock::now();
  std::vector<std::string> lines, keys;
  GenerateEvents(events, seed, &lines, &keys);
  ReferenceModel ref(Stack::kToday);
  for (const std::string& line : lines) ref.Add(line);
  ASSERT_EQ(ref.accepted(), lines.size());

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(partitions == 0 ? stack.StartBrokerWithDefaults() : stack.StartBroker(partitions));
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.WaitForReady(Millis(60'000)));
  FloodResult f = Flood(stack.http().host_port(), lines, 500, 4, Millis(240'000));
  ASSERT_TRUE(f.failure.empty()) << f.failure << "\n" << stack.tallyd().LogTail();
  ASSERT_EQ(f.accepted, static_cast<int64_t>(lines.size()));

  if (require_held_back) {
    EXPECT_GE(f.unavailable, 1) << "a flood into 2 partitions of 5 MiB without a single 503";
  }
  if (f.unavailable > 0) {
    EXPECT_FALSE(f.retry_after.empty()) << "a 503 without Retry-After: " << f.unavailable_body;
    EXPECT_TRUE(!f.retry_after.empty() &&
                std::all_of(f.retry_after.begin(), f.retry_after.end(),
                            [](unsigned char c) { return std::isdigit(c); }))
        << "Retry-After: " << f.retry_after;
    EXPECT_NE(f.unavailable_content_type.find("application/json"), std::string::npos)
        << f.unavailable_content_type;
    json body = json::parse(f.unavailable_body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("message") && body["message"].is_string() &&
                !body["message"].get<std::string>().empty())
        << "503 body: " << f.unavailable_body;
  }
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(180'000)));

  std::string metrics = stack.MetricsText();
  EXPECT_EQ(Metric(metrics, "tally_log_trimmed_total"), 0)
      << "acknowledged events were trimmed from the broker before tallyd read them\n"
      << stack.tallyd().LogTail();
  // A 503 publishes nothing, so each event reached the topic once.
  EXPECT_EQ(Metric(metrics, "tally_events_consumed_total"), static_cast<double>(lines.size()))
      << "events of batches answered 503 were published";
  EXPECT_EQ(Metric(metrics, "tally_events_applied_total"), static_cast<double>(lines.size()));
  ExpectViewsEqualReference(stack, ref, 8);
  std::fprintf(stderr, "[retention] total %.1f s\n", Seconds(t0));
}

// Clients flooding POST /v1/events (several connections, batches as fast as tallyd answers,
// retrying a 503 after its Retry-After): every event ends up acknowledged and counted once.
TEST(RetentionE2E, HttpFloodEveryAcknowledgedEventCounted) {
  FloodAndCheck(/*partitions=*/0, 200'000, 31, /*require_held_back=*/false);
}

// The same flood into a broker of two partitions (10 MiB of retention in all), which it outruns
// easily: tallyd must answer 503 + Retry-After with a JSON message rather than let the broker
// trim what it acknowledged, and the retried batches must all be accepted in the end.
TEST(RetentionE2E, HttpFloodHoldsBackOnASmallBroker) {
  FloodAndCheck(/*partitions=*/2, 100'000, 32, /*require_held_back=*/true);
}

// tallyd killed with SIGKILL twice while `tally produce --rate 4000` writes: each restart on the
// same data dir is ready within 3 s (the mock broker ignores static group membership, so a group
// rejoin took 5-11 s), the producer holds back meanwhile, and nothing is lost or counted twice.
TEST(RetentionE2E, KillDuringPacedProduceLosesNothing) {
  auto t0 = SteadyClock::now();
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBrokerWithDefaults());
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.WaitForReady(Millis(60'000)));
  const std::string file = stack.dir().File("events.ndjson");
  ASSERT_TRUE(Gen(stack, 90'000, 44, file));
  ReferenceModel ref(Stack::kToday);
  const size_t lines = AddFile(file, &ref);
  ASSERT_EQ(lines, 90'000u);

  Process produce;
  ASSERT_TRUE(stack.StartTally(&produce, ProduceArgs(stack, file, {"--rate", "4000"}), "produce"));
  for (int kill = 1; kill <= 2; ++kill) {
    std::this_thread::sleep_for(Millis(5000));
    if (!produce.Running()) {
      ADD_FAILURE() << "tally produce ended (" << produce.Describe() << ") before kill " << kill
                    << "\n"
                    << produce.LogTail();
    }
    stack.StopTallyd(SIGKILL);
    auto t_restart = SteadyClock::now();
    ASSERT_TRUE(stack.StartTallyd());
    ASSERT_TRUE(stack.WaitForReady(Millis(60'000)));
    const double ready_s = Seconds(t_restart);
    std::fprintf(stderr, "[retention] restart %d after kill -9: /readyz 200 after %.2f s\n", kill,
                 ready_s);
    EXPECT_LT(ready_s, 3.0) << "restart " << kill << " after kill -9 took " << ready_s
                            << " s to be ready";
  }
  ASSERT_TRUE(ProduceFinishes(stack, produce, Millis(120'000)));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000)));

  // Killed batches are read again after the restart; dedupe keeps every event counted once, so
  // the consumed counter (per process) is not compared.
  std::string metrics = stack.MetricsText();
  EXPECT_EQ(Metric(metrics, "tally_log_trimmed_total"), 0)
      << "events were trimmed from the broker before tallyd read them\n"
      << stack.tallyd().LogTail();
  ExpectViewsEqualReference(stack, ref, 8);
  std::fprintf(stderr, "[retention] total %.1f s\n", Seconds(t0));
}

// `tally produce` into a one-partition broker that nobody reads: 30k events (~16 MB, three times
// the partition's retention) must not be written over each other. The producer waits, says so,
// and finishes once tallyd reads.
TEST(RetentionE2E, ProduceWaitsForTheConsumer) {
  auto t0 = SteadyClock::now();
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  const std::string file = stack.dir().File("events.ndjson");
  ASSERT_TRUE(Gen(stack, 30'000, 45, file));
  ReferenceModel ref(Stack::kToday);
  const size_t lines = AddFile(file, &ref);
  ASSERT_EQ(lines, 30'000u);

  Process produce;
  ASSERT_TRUE(stack.StartTally(&produce, ProduceArgs(stack, file), "produce"));
  std::this_thread::sleep_for(Millis(5000));
  EXPECT_TRUE(produce.Running()) << "with no consumer, tally produce must hold back; it ended ("
                                 << produce.Describe() << ")\n"
                                 << produce.LogTail();
  const std::string err = Lower(ReadFileOrEmpty(stack.dir().File("produce.err")));
  EXPECT_NE(err.find("wait"), std::string::npos)
      << "tally produce should say that it is waiting for the consumer; its stderr:\n"
      << err;

  auto t_tallyd = SteadyClock::now();
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(ProduceFinishes(stack, produce, Millis(120'000)));
  std::fprintf(stderr, "[retention] tally produce exited 0 %.1f s after tallyd started\n",
               Seconds(t_tallyd));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000)));
  ExpectCounters(stack, ref, lines);
  ExpectViewsEqualReference(stack, ref, 8);
  std::fprintf(stderr, "[retention] total %.1f s\n", Seconds(t0));
}

}  // namespace
}  // namespace tally::integration
