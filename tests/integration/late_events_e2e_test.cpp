// tallyd's late-event policy end to end (docs/design.md: events older than the dedupe window before
// the newest event seen): with `--late-events reject` such an event is dead-lettered with the
// reason "late event" and counted nowhere; with the default (`apply`) it is counted like any
// other. Events that are older than the newest one but inside the window are counted either way.
// The views are compared with the reference model over the events that should count.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;

constexpr const char* kAdminToken = "late-it-admin-token";
constexpr const char* kWs = "1a7e0000-0000-4000-8000-00000000a1a7";

std::string Exec(const std::string& id, const std::string& time, const std::string& user) {
  return json{{"specversion", "1.0"},
              {"id", id},
              {"source", "it/late"},
              {"type", "agent.executed"},
              {"time", time},
              {"data",
               {{"workspace_id", kWs},
                {"user", {{"id", user}, {"name", "Late " + user}}},
                {"agent", {{"id", "agent-late"}, {"name", "Late agent"}}},
                {"message_credits", 2}}}}
      .dump();
}

struct Line {
  std::string text;
  bool late;  // older than the 7-day window before the newest event produced before it
};

// In log order (one partition): the newest first, then one a day older (inside the window),
// one 17 days older (late), one 8 days older (late), and a newer one again.
std::vector<Line> Lines() {
  return {{Exec("l-1", "2026-02-27T10:00:00Z", "u-1"), false},
          {Exec("l-2", "2026-02-26T10:00:00Z", "u-2"), false},
          {Exec("l-3", "2026-02-10T10:00:00Z", "u-3"), true},
          {Exec("l-4", "2026-02-19T09:59:00Z", "u-1"), true},
          {Exec("l-5", "2026-02-27T11:00:00Z", "u-4"), false}};
}

double Metric(Stack& stack, const char* name) {
  return MetricSum(stack.MetricsText(), name).value_or(-1);
}

std::vector<MetricsCall> Calls() {
  std::vector<MetricsCall> calls;
  for (const MetricsCall& c : AllCombinations(kWs, "u-1")) {
    if (c.query.entity == "agents" && c.query.metric == "executions") calls.push_back(c);
  }
  return calls;
}

TEST(LateEventsE2E, RejectDeadLettersThemWithTheReason) {
  const std::vector<Line> lines = Lines();
  ReferenceModel ref(Stack::kToday);
  std::vector<std::string> texts, keys;
  for (const Line& l : lines) {
    if (!l.late) ref.Add(l.text);
    texts.push_back(l.text);
    keys.push_back(kWs);
  }
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(stack.StartTallyd({"--late-events", "reject"}));
  ASSERT_TRUE(stack.Produce(texts, keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Metric(stack, "tally_dlq_produced_total"), 2.0);
  EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, Calls()), 0);

  Process p;
  ASSERT_TRUE(p.Start({TallyBinary(), "dlq", "list", "--brokers", stack.bootstrap(), "--json"},
                      stack.dir().File("dlq-list")));
  Result<int> status = p.Wait(Millis(60000));
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  const std::string out = ReadFileOrEmpty(stack.dir().File("dlq-list.out"));
  json doc = json::parse(out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << out;
  ASSERT_EQ(doc["count"], 2) << out;
  std::vector<std::string> payloads;
  for (const json& d : doc["dead_letters"]) {
    EXPECT_NE(d["reason"].get<std::string>().find("late event"), std::string::npos) << d.dump();
    payloads.push_back(d["payload"]);
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{lines[2].text, lines[3].text}));
}

TEST(LateEventsE2E, ApplyCountsThem) {
  const std::vector<Line> lines = Lines();
  ReferenceModel ref(Stack::kToday);
  std::vector<std::string> texts, keys;
  for (const Line& l : lines) {
    ref.Add(l.text);
    texts.push_back(l.text);
    keys.push_back(kWs);
  }
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(stack.StartTallyd());  // default policy: apply
  ASSERT_TRUE(stack.Produce(texts, keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Metric(stack, "tally_dlq_produced_total"), 0.0);
  EXPECT_EQ(Metric(stack, "tally_events_applied_total"), 5.0);
  EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, Calls()), 0);
}

}  // namespace
}  // namespace tally::integration
