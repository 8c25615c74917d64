// Broker faults, injected into an embedded broker hosted by the test (librdkafka's mock cluster,
// three brokers): every broker down, one broker down, partition leaders moving, request errors
// pushed onto Fetch, ListOffsets, Produce, OffsetCommit and the group protocol, and a slow
// cluster (added round-trip time). Through all of it ingest pauses and resumes by itself;
// `/readyz` answers 503 saying why while an owned partition's leader is unreachable and 200 once
// it is back; `POST /v1/events` answers 503 with Retry-After while the brokers are away (a
// client re-sends, as the answer says) and 202 only for events the broker took; queries keep
// answering. After every fault every endpoint family equals the independent references built
// from the raw events: nothing lost, nothing counted twice.
//
// One standalone tallyd (OneInstanceRidesOutBrokerFaults), a group of three and then four
// (AGroupRidesOutBrokerFaultsAndHandovers: faults during a SIGKILL restart and while a new
// instance joins), and --max-lag (ALaggingInstanceIsNotReady).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "group.h"
#include "harness.h"
#include "kafka/embedded_broker.h"
#include "metrics_compare.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kBrokers = 3;
// Kafka API keys and error codes (librdkafka's rd_kafka_resp_err_t values) for
// EmbeddedBroker::PushRequestErrors.
constexpr int16_t kProduce = 0, kFetch = 1, kListOffsets = 2, kOffsetCommit = 8,
                  kFindCoordinator = 10, kJoinGroup = 11, kHeartbeat = 12, kSyncGroup = 14;
constexpr int kNotLeader = 6, kRequestTimedOut = 7, kBrokerNotAvailable = 8,
              kCoordinatorNotAvailable = 15, kNotCoordinator = 16, kNotEnoughReplicas = 19,
              kRebalanceInProgress = 27, kDisconnect = -195;
constexpr const char* kBatchType = "application/cloudevents-batch+json";

// POSTs `lines` to /v1/events in batches of `batch` with the admin key, sending a batch again
// after each 503 (as its answer says to) until it is accepted. Every 503 must carry
// Retry-After; any other answer but 202 fails. `refused` counts the 503s.
::testing::AssertionResult PostUntilAccepted(HttpClient& http, const std::string& token,
                                             const std::vector<std::string>& lines, size_t batch,
                                             Millis timeout, int* refused) {
  const auto deadline = Clock::now() + timeout;
  for (size_t begin = 0; begin < lines.size(); begin += batch) {
    std::string body = "[";
    for (size_t i = begin; i < std::min(lines.size(), begin + batch); ++i) {
      body += (i > begin ? "," : "") + lines[i];
    }
    body += "]";
    while (true) {
      auto r =
          http.Send("POST", "/v1/events",
                    {{"Authorization", "Bearer " + token}, {"Content-Type", kBatchType}}, body);
      if (!r) return ::testing::AssertionFailure() << "POST /v1/events: " << r.error().message;
      if (r->status == 202) break;
      if (r->status != 503) {
        return ::testing::AssertionFailure()
               << "POST /v1/events answered " << r->status << ": " << r->body.substr(0, 300);
      }
      if (r->Header("retry-after").empty()) {
        return ::testing::AssertionFailure() << "a 503 without Retry-After: " << r->body;
      }
      ++*refused;
      if (Clock::now() > deadline) {
        return ::testing::AssertionFailure()
               << "still 503 after " << timeout.count() << " ms: " << r->body.substr(0, 300);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return ::testing::AssertionSuccess();
}

// Polls /readyz every 2 ms on its own connection while it lives, through the transitions a test
// drives: every 503 must name its reason. The status and the reason come from one reading of
// the consumer's state; two readings once let a change in between answer not_ready without one.
class ReadyzWatcher {
 public:
  explicit ReadyzWatcher(const std::string& host_port)
      : thread_([this, host_port] { Watch(host_port); }) {}
  ~ReadyzWatcher() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ready() const { return ready_; }
  int not_ready() const { return not_ready_; }
  // The first 503 body without a reason, or empty.
  const std::string& unexplained() const { return unexplained_; }
  int unexplained_count() const { return unexplained_count_; }

 private:
  void Watch(const std::string& host_port) {
    HttpClient http(host_port);
    while (!stop_) {
      auto r = http.Send("GET", "/readyz");
      if (r && r->status == 200) ++ready_;
      if (r && r->status == 503) {
        ++not_ready_;
        if (r->body.find("\"reason\":") == std::string::npos) {
          if (unexplained_count_++ == 0) unexplained_ = r->body.substr(0, 400);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::atomic<bool> stop_{false};
  int ready_ = 0, not_ready_ = 0, unexplained_count_ = 0;  // read after Stop()
  std::string unexplained_;
  std::thread thread_;  // last: starts once the counters exist
};

double Metric(HttpClient& http, const char* name) {
  auto r = http.Send("GET", "/metrics");
  if (!r || r->status != 200) return -1;
  return MetricSum(r->body, name).value_or(0);
}

TEST(BrokerFaultsE2E, OneInstanceRidesOutBrokerFaults) {
  constexpr int kPartitions = 6;
  const Dataset data = GenerateDataset(StreamOptions(20261209, 7600, 6, 150));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartInProcessBroker(kPartitions, kBrokers));
  kafka::EmbeddedBroker& broker = *stack.in_process_broker();
  // A POST waits 2 s for the broker's acknowledgement before answering 503.
  ASSERT_TRUE(stack.StartTallyd({"--http-ingest-timeout-ms", "2000"}));
  ASSERT_TRUE(stack.WaitForReady(Millis(60000)));
  HttpClient& http = stack.http();
  SliceCursor cursor(&data);  // what the topic holds once produced, for the references
  Dataset first = cursor.Take(1500);
  ASSERT_TRUE(stack.Produce(first.lines, first.keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  // Through the cut-offs of steps 1 and 3 and the recoveries after them.
  ReadyzWatcher watcher(http.host_port());

  // 1. Every broker down for 6 s, while a producer keeps sending.
  {
    ASSERT_TRUE(broker.SetBrokerDown(-1));
    const auto down_at = Clock::now();
    Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    std::string body;
    ASSERT_TRUE(WaitForReadyz(http, 503, Millis(15000), &body));
    std::fprintf(stderr, "[broker_faults] all brokers down: not ready after %.1f s\n",
                 Elapsed(down_at));
    EXPECT_NE(body.find("cut off from the Kafka cluster"), std::string::npos) << body;
    EXPECT_EQ(Metric(http, "tally_kafka_cut_off"), 1);
    EXPECT_EQ(Metric(http, "tally_kafka_unreachable_partitions"), kPartitions);
    // Queries go on from the views.
    auto q = http.Send("GET",
                       "/api/agents/leaderboard?workspace_uuid=" + UrlEncode(data.keys.front()) +
                           "&date_from=2026-01-01&date_to=2026-03-01",
                       {{"Authorization", std::string("Bearer ") + kGroupAdminToken}});
    ASSERT_TRUE(q);
    EXPECT_EQ(q->status, 200) << q->body;
    // POST /v1/events: 503 with Retry-After after the acknowledgement timeout, never a 202.
    Dataset posted = cursor.Take(40);
    std::string batch = "[";
    for (size_t i = 0; i < posted.lines.size(); ++i) batch += (i ? "," : "") + posted.lines[i];
    batch += "]";
    auto r = http.Send("POST", "/v1/events",
                       {{"Authorization", std::string("Bearer ") + kGroupAdminToken},
                        {"Content-Type", kBatchType}},
                       batch);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503) << r->body;
    EXPECT_EQ(r->Header("retry-after"), "1");
    std::this_thread::sleep_for(std::chrono::milliseconds(6000) - (Clock::now() - down_at));
    ASSERT_TRUE(broker.SetBrokerUp(-1));
    const auto up_at = Clock::now();
    ASSERT_TRUE(WaitForReadyz(http, 200, Millis(30000), &body));
    std::fprintf(stderr, "[broker_faults] brokers back: ready after %.1f s\n", Elapsed(up_at));
    EXPECT_EQ(Metric(http, "tally_kafka_cut_off"), 0);
    ASSERT_TRUE(producing.Join());
    // The client sends the refused batch again, as the 503 said; whether or not the first
    // attempt reached the log after all, its events count once.
    int refused = 0;
    ASSERT_TRUE(
        PostUntilAccepted(http, kGroupAdminToken, posted.lines, 40, Millis(30000), &refused));
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  }

  // 2. Every partition's leader moves to another broker, three times, while events stream in.
  {
    Dataset during = cursor.Take(1500);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    for (int round = 1; round <= 3; ++round) {
      for (int p = 0; p < kPartitions; ++p) {
        ASSERT_TRUE(broker.SetPartitionLeader(Stack::kTopic, p, 1 + (p + round) % kBrokers));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  }

  // 3. One broker down: the partitions it leads (1 and 4 now) are cut off; /readyz names it.
  {
    ASSERT_TRUE(broker.SetBrokerDown(2));
    Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    std::string body;
    ASSERT_TRUE(WaitForReadyz(http, 503, Millis(15000), &body));
    EXPECT_NE(body.find("(broker 2 "), std::string::npos) << body;
    EXPECT_EQ(Metric(http, "tally_kafka_unreachable_partitions"), 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    ASSERT_TRUE(broker.SetBrokerUp(2));
    ASSERT_TRUE(WaitForReadyz(http, 200, Millis(30000)));
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  }
  watcher.Stop();
  std::fprintf(stderr, "[broker_faults] /readyz polled through the faults: %d ready, %d not\n",
               watcher.ready(), watcher.not_ready());
  EXPECT_GT(watcher.ready(), 0);
  EXPECT_GT(watcher.not_ready(), 0);
  EXPECT_EQ(watcher.unexplained_count(), 0) << "a 503 without a reason: " << watcher.unexplained();

  // 4. Errors pushed onto Fetch, ListOffsets, OffsetCommit and Produce requests (retriable
  // ones, and dropped connections), while events come through Kafka and through POST.
  {
    ASSERT_TRUE(broker.PushRequestErrors(
        kFetch, {kNotLeader, kRequestTimedOut, kDisconnect, kNotLeader, kBrokerNotAvailable,
                 kDisconnect, kRequestTimedOut, kNotLeader}));
    ASSERT_TRUE(broker.PushRequestErrors(kListOffsets, {kNotLeader, kDisconnect}));
    ASSERT_TRUE(broker.PushRequestErrors(
        kOffsetCommit, {kNotCoordinator, kCoordinatorNotAvailable, kRequestTimedOut}));
    ASSERT_TRUE(
        broker.PushRequestErrors(kProduce, {kNotEnoughReplicas, kBrokerNotAvailable, kDisconnect,
                                            kNotLeader, kRequestTimedOut, kNotEnoughReplicas}));
    Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    Dataset posted = cursor.Take(400);
    int refused = 0;
    ASSERT_TRUE(
        PostUntilAccepted(http, kGroupAdminToken, posted.lines, 50, Millis(60000), &refused));
    std::fprintf(stderr, "[broker_faults] request errors: %d POST batches refused with 503\n",
                 refused);
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  }

  // 5. A slow cluster: 250 ms added to every answer. Ingest slows down, stays ready, loses
  // nothing.
  {
    ASSERT_TRUE(broker.SetRoundTripTime(250));
    Dataset during = cursor.Rest();
    const auto t0 = Clock::now();
    ASSERT_TRUE(stack.Produce(during.lines, during.keys));
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(120000)));
    std::fprintf(stderr, "[broker_faults] 250 ms round trips: produced and caught up in %.1f s\n",
                 Elapsed(t0));
    auto r = http.Send("GET", "/readyz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    ASSERT_TRUE(broker.SetRoundTripTime(0));
  }

  // Every endpoint family against the references of everything the log holds.
  const References refs(cursor.taken());
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  Group single(&stack, kPartitions);
  single.AddExternal("tallyd", http.host_port());
  CheckEveryInstance(single, refs, workspaces, "one instance after broker faults");
  EXPECT_EQ(Metric(http, "tally_kafka_cut_off"), 0);
  EXPECT_TRUE(stack.TallydRunning());
}

// --max-lag: an instance whose views trail the log by more than it is not ready, and ready again
// once it has caught up. A steady stream with a 1 s batch window keeps the views about a
// second's worth of events behind.
TEST(BrokerFaultsE2E, ALaggingInstanceIsNotReady) {
  const Dataset data = GenerateDataset(StreamOptions(20261210, 8000, 4, 150));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartInProcessBroker(2, 1));
  ASSERT_TRUE(stack.StartTallyd({"--max-lag", "300", "--batch-ms", "1000"}));
  ASSERT_TRUE(stack.WaitForReady(Millis(60000)));
  // 8,000 events over 4 s, in 40 bursts.
  int lagging_answers = 0, answers = 0;
  std::string lagging_body;
  for (size_t begin = 0; begin < data.lines.size(); begin += 200) {
    Dataset burst = Slice(data, begin, begin + 200);
    ASSERT_TRUE(stack.Produce(burst.lines, burst.keys));
    auto r = stack.http().Send("GET", "/readyz");
    ASSERT_TRUE(r);
    ++answers;
    if (r->status == 503) {
      ++lagging_answers;
      lagging_body = r->body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "[broker_faults] --max-lag 300: %d of %d answers while streaming were 503\n",
               lagging_answers, answers);
  EXPECT_GT(lagging_answers, 0);
  EXPECT_NE(lagging_body.find("more than --max-lag 300"), std::string::npos) << lagging_body;
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(30000)));
  ASSERT_TRUE(WaitForReadyz(stack.http(), 200, Millis(5000)));
  const References refs(data.lines);
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  std::vector<MetricsCall> calls = AllCombinations(workspaces.front(), "");
  EXPECT_EQ(CheckAll(stack.http(), kGroupAdminToken, refs.metrics, calls, 5), 0);
}

// A group of three instances, then four: a broker down, leaders moving while an instance is
// SIGKILLed and restarted, group-protocol and fetch errors while a new instance joins, and every
// broker down. After each, the group settles and every instance answers every endpoint family
// exactly.
TEST(BrokerFaultsE2E, AGroupRidesOutBrokerFaultsAndHandovers) {
  const Dataset data = GenerateDataset(StreamOptions(20261211, 6000, 12, 150));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartInProcessBroker(kGroupPartitions, kBrokers));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  kafka::EmbeddedBroker& broker = *stack.in_process_broker();
  Group group(&stack);
  for (const char* id : {"node-a", "node-b", "node-c"}) ASSERT_TRUE(group.Start(id, 1));
  SliceCursor cursor(&data);
  Dataset first = cursor.Take(2000);
  ASSERT_TRUE(stack.Produce(first.lines, first.keys));
  ASSERT_TRUE(group.WaitStable(Millis(120000)));

  // 1. Broker 3 down for 6 s while events stream in: the instances owning partitions it leads
  // are not ready meanwhile.
  {
    ASSERT_TRUE(broker.SetBrokerDown(3));
    const auto down_at = Clock::now();
    const Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    int not_ready = 0;
    for (Instance& in : group.instances()) {
      std::string body;
      if (WaitForReadyz(*in.http, 503, Millis(10000), &body)) {
        ++not_ready;
        EXPECT_NE(body.find("cut off"), std::string::npos) << in.id << ": " << body;
      }
    }
    EXPECT_GT(not_ready, 0) << "no instance noticed that broker 3 was down";
    std::this_thread::sleep_for(std::chrono::milliseconds(6000) - (Clock::now() - down_at));
    ASSERT_TRUE(broker.SetBrokerUp(3));
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(group.WaitStable(Millis(120000)));
    const References refs(cursor.taken());
    CheckEveryInstance(group, refs, refs.metrics.WorkspacesByActivity(), "after broker 3 was down");
  }

  // 2. Leaders move while node-b is SIGKILLed and restarted on its data directory (its
  // partitions move to the others, then back).
  {
    const Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    group.Kill("node-b");
    for (int round = 1; round <= 3; ++round) {
      for (int p = 0; p < kGroupPartitions; ++p) {
        ASSERT_TRUE(broker.SetPartitionLeader(Stack::kTopic, p, 1 + (p + round) % kBrokers));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
    }
    ASSERT_TRUE(group.Start("node-b", 1));
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(group.WaitStable(Millis(120000)));
  }

  // 3. Group-protocol, commit and fetch errors while a fourth instance joins.
  {
    ASSERT_TRUE(broker.PushRequestErrors(kFindCoordinator, {kCoordinatorNotAvailable}));
    ASSERT_TRUE(broker.PushRequestErrors(
        kJoinGroup, {kCoordinatorNotAvailable, kNotCoordinator, kRequestTimedOut}));
    ASSERT_TRUE(broker.PushRequestErrors(kSyncGroup, {kRebalanceInProgress, kNotCoordinator}));
    ASSERT_TRUE(broker.PushRequestErrors(kHeartbeat, {kNotCoordinator, kRequestTimedOut}));
    ASSERT_TRUE(broker.PushRequestErrors(kOffsetCommit, {kNotCoordinator, kRequestTimedOut}));
    ASSERT_TRUE(broker.PushRequestErrors(
        kFetch, {kNotLeader, kDisconnect, kRequestTimedOut, kNotLeader, kDisconnect}));
    const Dataset during = cursor.Take(1000);
    BackgroundProduce producing(&stack, during.lines, during.keys);
    ASSERT_TRUE(group.Start("node-d", 1));
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(group.WaitStable(Millis(120000)));
    const References refs(cursor.taken());
    CheckEveryInstance(group, refs, refs.metrics.WorkspacesByActivity(),
                       "after a handover and a join under faults");
  }

  // 4. Every broker down for 6 s: every instance is cut off and not ready, then all recover.
  {
    ASSERT_TRUE(broker.SetBrokerDown(-1));
    const auto down_at = Clock::now();
    for (Instance& in : group.instances()) {
      EXPECT_TRUE(WaitForReadyz(*in.http, 503, Millis(10000))) << in.id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(6000) - (Clock::now() - down_at));
    ASSERT_TRUE(broker.SetBrokerUp(-1));
    Dataset last = cursor.Rest();
    ASSERT_TRUE(stack.Produce(last.lines, last.keys));
    ASSERT_TRUE(group.WaitStable(Millis(120000)));
  }
  const References refs(cursor.taken());
  CheckEveryInstance(group, refs, refs.metrics.WorkspacesByActivity(),
                     "after every broker was down");
}

// SIGTERM while every broker is down: tallyd (standalone, and a group member) still stops within
// seconds instead of waiting for the cluster to answer its consumer's close (a regression: it
// waited forever); a group member stopped while the brokers answer exits cleanly too.
TEST(BrokerFaultsE2E, StopsPromptlyWhileTheBrokersAreDown) {
  const Dataset data = GenerateDataset(StreamOptions(20261214, 1000, 4, 150));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartInProcessBroker(kGroupPartitions, 1));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  ASSERT_TRUE(stack.StartTallyd());
  Group group(&stack);
  ASSERT_TRUE(group.Start("node-a", 0));
  ASSERT_TRUE(stack.Produce(data.lines, data.keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  // First a member that stops while the brokers answer: it hands its partitions back and exits 0.
  ASSERT_TRUE(group.Start("node-b", 0));
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  Instance* b = group.Find("node-b");
  ASSERT_NE(b, nullptr);
  b->process->Signal(SIGTERM);
  EXPECT_TRUE(ExitsWith(*b->process, 0, Millis(30000)));
  group.Kill("node-b");  // forget it
  ASSERT_TRUE(stack.in_process_broker()->SetBrokerDown(-1));
  ASSERT_TRUE(WaitForReadyz(stack.http(), 503, Millis(15000)));
  ASSERT_TRUE(WaitForReadyz(*group.instances().front().http, 503, Millis(15000)));
  for (Process* p : {&stack.tallyd(), group.instances().front().process.get()}) {
    const auto t0 = Clock::now();
    p->Signal(SIGTERM);
    EXPECT_TRUE(ExitsWith(*p, 0, Millis(30000)));
    std::fprintf(stderr, "[broker_faults] `%s` stopped %.1f s after SIGTERM, brokers down\n",
                 p->CommandLine().substr(0, 60).c_str(), Elapsed(t0));
    EXPECT_LT(Elapsed(t0), 20);
  }
}

}  // namespace
}  // namespace tally::integration
