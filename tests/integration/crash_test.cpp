// Exactly once under crashes: `kill -9` of tallyd at five random moments during ingest, restarting
// it on the same data dir each time; after catch-up every answer equals the reference exactly
// (nothing lost, nothing counted twice). Re-sending already-consumed events changes nothing.
// Malformed messages of many kinds land in the dead-letter topic with their reason, are counted
// in /metrics, and ingest goes on.
//
// The kill moments come from a seeded RNG; the seed is printed, and TALLY_IT_SEED=<n> replays it.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "harness.h"
#include "kafka/dead_letter.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
constexpr const char* kAdminToken = "it-crash-admin-token";
constexpr const char* kDlqWorkspace = "ws-dead-letters";

double Elapsed(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

// A broad subset of the combinations: everything except the granularity variants of
// group_by=none/user (covered by metrics_e2e_test).
std::vector<MetricsCall> BroadSubset(const ReferenceModel& ref,
                                     const std::vector<std::string>& wss) {
  std::vector<MetricsCall> out;
  for (const std::string& ws : wss) {
    for (MetricsCall& c : AllCombinations(ws, ref.UsersByActivity(ws).front())) {
      if (c.query.group_by != "date" && c.granularity) continue;
      out.push_back(std::move(c));
    }
  }
  return out;
}

json GoodEvent(const std::string& id, const std::string& marker = "") {
  return {{"specversion", "1.0"},
          {"id", id},
          {"source", "it/dead-letters" + marker},
          {"type", "agent.executed"},
          {"time", "2026-02-27T10:00:00Z"},
          {"data",
           {{"workspace_id", kDlqWorkspace},
            {"user", {{"id", "u-dlq"}, {"name", "Dee Letter"}}},
            {"agent", {{"id", "agent-dlq"}, {"name", "DLQ agent"}}},
            {"duration_ms", 5},
            {"tokens", 10},
            {"cost_usd", 0.5}}}};
}

struct BadMessage {
  std::string kind;
  std::string payload;
  std::string reason_pattern;  // regex (ECMAScript, case-insensitive) the reason must match
};

// Hand-written malformed messages, each carrying a unique marker so its dead letter can be found.
std::vector<BadMessage> BadMessages() {
  std::vector<BadMessage> out;
  int n = 0;
  auto add = [&](const std::string& kind, const std::string& payload, const std::string& re) {
    out.push_back({kind, payload, re});
    ++n;
  };
  auto marker = [&]() { return "dlqmark-" + std::to_string(n); };
  auto mutate = [&](auto&& f) {
    json e = GoodEvent(marker(), "/" + marker());
    f(e);
    return e.dump();
  };
  add("invalid JSON", R"({"specversion":"1.0","id":")" + marker() + R"(" "source":"it"})", "json");
  {
    std::string full = GoodEvent(marker()).dump();
    add("truncated JSON", full.substr(0, full.size() / 2), "json");
  }
  add("not an object", "[\"" + marker() + "\", 1, 2]", "object");
  add("missing id", mutate([](json& e) { e.erase("id"); }), R"((^|[^.\w])id\b)");
  add("id not a string", mutate([](json& e) { e["id"] = 12345; }), R"((^|[^.\w])id\b)");
  add("missing specversion", mutate([](json& e) { e.erase("specversion"); }), "specversion");
  add("wrong specversion", mutate([](json& e) { e["specversion"] = "0.3"; }), "specversion");
  add("missing data", mutate([](json& e) { e.erase("data"); }), R"((^|[^.\w])data\b)");
  add("missing workspace_id", mutate([](json& e) { e["data"].erase("workspace_id"); }),
      R"(data\.workspace_id)");
  add("missing user id", mutate([](json& e) { e["data"]["user"].erase("id"); }),
      R"(data\.user\.id)");
  add("ill-typed user id", mutate([](json& e) { e["data"]["user"]["id"] = true; }),
      R"(data\.user\.id)");
  add("missing agent id", mutate([](json& e) { e["data"]["agent"].erase("id"); }),
      R"(data\.agent)");
  add("workflow event without data.workflow",
      mutate([](json& e) { e["type"] = "workflow.executed"; }), R"(data\.workflow)");
  add("missing time", mutate([](json& e) { e.erase("time"); }), R"((^|[^.\w])time\b)");
  add("bad time (words)", mutate([](json& e) { e["time"] = "yesterday"; }), R"((^|[^.\w])time\b)");
  add("bad time (month 13)", mutate([](json& e) { e["time"] = "2026-13-01T00:00:00Z"; }),
      R"((^|[^.\w])time\b)");
  add("bad time (no offset)", mutate([](json& e) { e["time"] = "2026-02-01T00:00:00"; }),
      R"((^|[^.\w])time\b)");
  add("unknown type", mutate([](json& e) { e["type"] = "agent.exploded"; }), R"((^|[^.\w])type\b)");
  add("negative cost", mutate([](json& e) { e["data"]["cost_usd"] = -1; }), R"(data\.cost_usd)");
  add("negative duration", mutate([](json& e) { e["data"]["duration_ms"] = -20; }),
      R"(data\.duration_ms)");
  add("ill-typed tokens", mutate([](json& e) { e["data"]["tokens"] = "many"; }), R"(data\.tokens)");
  add("unknown visibility", mutate([](json& e) { e["data"]["agent"]["visibility"] = "secret"; }),
      R"(visibility)");
  add("oversized (> 64 KiB)",
      mutate([](json& e) { e["data"]["user"]["name"] = std::string(70 * 1024, 'x'); }),
      "(large|size|bytes|65536)");
  return out;
}

// Run with the default persist interval (kills land while batches are staged in memory) and with
// a persist every 20 ms (kills land in the middle of persists, too).
class CrashE2E : public ::testing::TestWithParam<std::vector<std::string>> {};

INSTANTIATE_TEST_SUITE_P(PersistIntervals, CrashE2E,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"--persist-ms", "20"}),
                         [](const auto& info) {
                           return info.param.empty() ? std::string("Default")
                                                     : std::string("Persist20ms");
                         });

TEST_P(CrashE2E, KillNineDuringIngestThenResendAndDeadLetters) {
  auto t0 = SteadyClock::now();
  std::mt19937_64 rng(TestSeed("crash"));

  gen::GenOptions o;
  o.seed = 424242;
  o.events = 30000;
  o.workspaces = 5;
  o.organizations = 2;
  o.users = 300;
  o.end_day = Stack::kToday;
  o.days = 120;
  o.duplicate_fraction = 0.07;
  o.malformed_fraction = 0.005;
  Dataset data = GenerateDataset(o);
  ReferenceModel ref(Stack::kToday);
  std::vector<RefVerdict> verdicts;
  for (const std::string& line : data.lines) verdicts.push_back(ref.Add(line));

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(4));
  ASSERT_TRUE(stack.StartTallyd(GetParam()));

  // The lines go out in chunks. Before each chunk the producer waits until tallyd's lag is
  // small (the embedded broker keeps only the newest 5 MB per partition, so an unpaced producer
  // would have data trimmed before tallyd reads it). Five randomly chosen chunks are streamed
  // from a second thread while, after a random 5-150 ms, tallyd is killed with SIGKILL (it is
  // ingesting that chunk), then restarted on the same data dir.
  //
  // Every restart rejoins the same consumer group on the same data dir: tallyd keeps a static
  // group member id there (group.instance.id), so the restarted process takes the partitions
  // of the killed one back within seconds instead of waiting out its session.
  const size_t kChunk = 1500;
  const size_t chunks = (data.lines.size() + kChunk - 1) / kChunk;
  std::vector<size_t> kill_chunks;
  {
    std::vector<size_t> candidates;
    for (size_t c = 1; c + 1 < chunks; ++c) candidates.push_back(c);
    std::shuffle(candidates.begin(), candidates.end(), rng);
    kill_chunks.assign(candidates.begin(), candidates.begin() + 5);
    std::sort(kill_chunks.begin(), kill_chunks.end());
  }
  std::uniform_int_distribution<int> delay_ms(5, 150);
  int kills = 0, kills_with_lag = 0;
  for (size_t c = 0; c < chunks; ++c) {
    size_t begin = c * kChunk, end = std::min(data.lines.size(), begin + kChunk);
    std::vector<std::string> l(data.lines.begin() + begin, data.lines.begin() + end);
    std::vector<std::string> k(data.keys.begin() + begin, data.keys.begin() + end);
    bool kill_here = std::find(kill_chunks.begin(), kill_chunks.end(), c) != kill_chunks.end();
    // Pace on the lag: at most one chunk behind, and fully caught up before a kill chunk (so
    // that the process to be killed is past its start and group join, and ingesting).
    const int64_t max_lag = kill_here ? 0 : static_cast<int64_t>(kChunk);
    for (auto deadline = SteadyClock::now() + std::chrono::seconds(240);;) {
      Stack::IngestState st = stack.ReadIngestState();
      if (st.answered && st.lag <= max_lag) break;
      ASSERT_TRUE(stack.TallydRunning()) << stack.tallyd().LogTail();
      ASSERT_LT(SteadyClock::now(), deadline) << "tallyd does not keep up: " << st.description;
      std::this_thread::sleep_for(Millis(20));
    }
    if (!kill_here) {
      ASSERT_TRUE(stack.Produce(l, k)) << "chunk " << c;
      continue;
    }
    // The chunk streams in from another thread for ~150 ms (5 slices, 30 ms apart) while
    // tallyd ingests it; the kill comes at a random moment of that window, so it hits fetches,
    // batch folding and WriteBatch commits at random phases.
    ::testing::AssertionResult produced = ::testing::AssertionSuccess();
    std::thread producer([&] {
      const size_t slice = (l.size() + 4) / 5;
      for (size_t i = 0; i < l.size() && produced; i += slice) {
        size_t j = std::min(l.size(), i + slice);
        produced = stack.Produce({l.begin() + i, l.begin() + j}, {k.begin() + i, k.begin() + j});
        std::this_thread::sleep_for(Millis(30));
      }
    });
    int delay = delay_ms(rng);
    std::this_thread::sleep_for(Millis(delay));
    Stack::IngestState st = stack.ReadIngestState();
    stack.StopTallyd(SIGKILL);
    producer.join();
    ASSERT_TRUE(produced) << "chunk " << c;
    ++kills;
    kills_with_lag += st.lag > 0;
    std::fprintf(stderr,
                 "[crash] kill -9 #%d at %.2f s, %d ms into producing lines [%zu, %zu): lag %lld\n",
                 kills, Elapsed(t0), delay, begin, end, static_cast<long long>(st.lag));
    ASSERT_TRUE(stack.StartTallyd(GetParam())) << "restart #" << kills;
  }
  ASSERT_EQ(kills, 5);
  // A kill while nothing was left to ingest would not test anything: most must hit a backlog.
  EXPECT_GE(kills_with_lag, 3) << "too many kills landed while tallyd was idle";
  auto t_catch_up = SteadyClock::now();
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(240000)));
  std::fprintf(stderr, "[crash] caught up %.1f s after the last restart (%d starts), at %.1f s\n",
               Elapsed(t_catch_up), stack.tallyd_starts(), Elapsed(t0));

  std::vector<std::string> wss = ref.WorkspacesByActivity();
  std::vector<MetricsCall> calls = BroadSubset(ref, wss);
  {
    SCOPED_TRACE("after 5 crashes");
    ASSERT_EQ(CheckAll(stack.http(), kAdminToken, ref, calls), 0);
  }

  // Re-send already-consumed events (the newest 1000 accepted lines: their event times lie
  // within the dedupe window of the newest event): nothing may change.
  std::vector<std::string> resend, resend_keys;
  for (size_t i = data.lines.size(); i-- > 0 && resend.size() < 1000;) {
    if (verdicts[i] != RefVerdict::kAccepted) continue;
    resend.push_back(data.lines[i]);
    resend_keys.push_back(data.keys[i]);
  }
  std::string before = stack.MetricsText();
  ASSERT_TRUE(stack.Produce(resend, resend_keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  std::string after = stack.MetricsText();
  EXPECT_EQ(MetricSum(after, "tally_events_duplicate_total").value_or(0) -
                MetricSum(before, "tally_events_duplicate_total").value_or(0),
            static_cast<double>(resend.size()));
  EXPECT_EQ(MetricSum(after, "tally_events_applied_total").value_or(0),
            MetricSum(before, "tally_events_applied_total").value_or(0));
  {
    SCOPED_TRACE("after re-sending 1000 consumed events");
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, calls), 0);
  }

  // Dead letters: malformed messages of many kinds, then good events in the same partition.
  std::vector<BadMessage> bad = BadMessages();
  std::vector<std::string> lines, keys;
  for (const BadMessage& b : bad) {
    EXPECT_EQ(ref.Add(b.payload), RefVerdict::kInvalid) << "the reference accepts " << b.kind;
    lines.push_back(b.payload);
    keys.push_back(kDlqWorkspace);
  }
  const int kGood = 7;
  for (int i = 0; i < kGood; ++i) {
    lines.push_back(GoodEvent("after-dead-letters-" + std::to_string(i)).dump());
    keys.push_back(kDlqWorkspace);
    ASSERT_EQ(ref.Add(lines.back()), RefVerdict::kAccepted);
  }
  before = stack.MetricsText();
  ASSERT_TRUE(stack.Produce(lines, keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  after = stack.MetricsText();
  auto delta = [&](const char* name, std::vector<std::string> labels = {}) {
    return MetricSum(after, name, labels).value_or(0) - MetricSum(before, name, labels).value_or(0);
  };
  EXPECT_EQ(delta("tally_events_rejected_total"), static_cast<double>(bad.size())) << after;
  EXPECT_EQ(delta("tally_events_consumed_total"), static_cast<double>(lines.size()));
  EXPECT_EQ(delta("tally_events_applied_total"), static_cast<double>(kGood));

  // Every malformed message is in the dead-letter topic with a reason naming the problem.
  std::vector<ConsumedMessage> dlq;
  for (auto deadline = SteadyClock::now() + std::chrono::seconds(30);;) {
    Result<std::vector<ConsumedMessage>> r =
        ReadTopic(stack.bootstrap(), Stack::kDlqTopic, Millis(20000));
    ASSERT_TRUE(r) << r.error().message;
    dlq = std::move(*r);
    size_t found = 0;
    for (const BadMessage& b : bad) {
      for (const ConsumedMessage& m : dlq) found += m.value == b.payload;
    }
    if (found >= bad.size() || SteadyClock::now() > deadline) break;
    std::this_thread::sleep_for(Millis(200));
  }
  for (const BadMessage& b : bad) {
    SCOPED_TRACE("malformed message: " + b.kind);
    const ConsumedMessage* hit = nullptr;
    for (const ConsumedMessage& m : dlq) {
      if (m.value == b.payload) hit = &m;
    }
    if (!hit) {
      ADD_FAILURE() << "not in " << Stack::kDlqTopic << " (" << dlq.size()
                    << " dead letters read): " << b.payload.substr(0, 200);
      continue;
    }
    std::string reason = hit->Header(kafka::kDeadLetterReasonHeader);
    EXPECT_TRUE(std::regex_search(reason, std::regex(b.reason_pattern, std::regex::icase)))
        << "tally-dlq-reason \"" << reason << "\" does not match /" << b.reason_pattern << "/";
    EXPECT_EQ(hit->Header(kafka::kDeadLetterSourceTopicHeader), Stack::kTopic);
    EXPECT_FALSE(hit->Header(kafka::kDeadLetterSourcePartitionHeader).empty());
    std::string offset = hit->Header(kafka::kDeadLetterSourceOffsetHeader);
    EXPECT_TRUE(!offset.empty() && offset.find_first_not_of("0123456789") == std::string::npos)
        << "tally-source-offset \"" << offset << "\"";
    EXPECT_EQ(hit->key, kDlqWorkspace);
  }

  // Ingest went on: the good events after the dead letters are counted.
  std::vector<MetricsCall> dlq_calls;
  for (MetricsCall& c : AllCombinations(kDlqWorkspace, "u-dlq")) {
    if (c.query.group_by != "date" && c.granularity) continue;
    dlq_calls.push_back(std::move(c));
  }
  {
    SCOPED_TRACE("workspace of the dead-letter phase");
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, dlq_calls), 0);
  }
  RefQuery q;
  q.workspace_id = kDlqWorkspace;
  q.period = "7d";
  EXPECT_EQ(ref.Answer(q).total, kGood);  // (the comparison above checked tally against this)
  std::fprintf(stderr, "[crash] done in %.1f s (%zu + %zu metrics requests)\n", Elapsed(t0),
               2 * calls.size(), dlq_calls.size());
}

}  // namespace
}  // namespace tally::integration
