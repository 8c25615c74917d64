// `tally dlq` end to end: malformed events produced to Kafka are dead-lettered by tallyd;
// `tally dlq list` shows them (partition, offset, reason, source, payload; text, --json, --raw,
// --reason filter); `tally dlq redrive` refuses to send payloads that would be rejected again,
// sends nothing on --dry-run, and sends corrected events (--fixed) that are then counted once;
// redriving them again changes nothing (tallyd dedupes by (source, id)). A dead letter whose
// payload is valid (as after an upgrade) is redriven unchanged by --offsets.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "kafka/admin.h"
#include "kafka/dead_letter.h"
#include "kafka/producer.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;

constexpr const char* kAdminToken = "dlq-it-admin-token";
constexpr const char* kWs = "dddddddd-0000-4000-8000-00000000d1a0";

struct CliRun {
  int exit_code = -1;
  std::string out, err;
  std::string Describe() const {
    return "exit " + std::to_string(exit_code) + "\n--- stdout:\n" + out + "\n--- stderr:\n" + err;
  }
};

CliRun RunTally(Stack& stack, const std::string& log_name, std::vector<std::string> args) {
  CliRun run;
  args.insert(args.begin(), TallyBinary());
  Process p;
  if (Status s = p.Start(args, stack.dir().File(log_name)); !s) {
    run.err = s.error().message;
    return run;
  }
  Result<int> status = p.Wait(Millis(60000));
  if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  if (!status) p.Stop(SIGKILL);
  run.out = ReadFileOrEmpty(stack.dir().File(log_name + ".out"));
  run.err = ReadFileOrEmpty(stack.dir().File(log_name + ".err"));
  return run;
}

json Good(const std::string& id, const std::string& user = "u-dlq-1") {
  return {{"specversion", "1.0"},
          {"id", id},
          {"source", "it/dlq"},
          {"type", "agent.executed"},
          {"time", "2026-02-27T10:00:00Z"},
          {"data",
           {{"workspace_id", kWs},
            {"organization_id", "org_dlq"},
            {"user", {{"id", user}, {"name", "Dee Letter"}}},
            {"agent", {{"id", "agent-dlq"}, {"name", "DLQ agent"}}},
            {"duration_ms", 5},
            {"tokens", 10},
            {"cost_usd", 0.5}}}};
}

struct Broken {
  std::string payload;  // what was produced (and dead-lettered)
  std::string fixed;    // its correction (same source and id)
  std::string reason;   // a substring of the expected dead-letter reason
};

std::vector<Broken> BrokenEvents() {
  std::vector<Broken> out;
  auto add = [&](const std::string& id, auto&& breakit, const std::string& reason,
                 const std::string& user = "u-dlq-1") {
    json good = Good(id, user);
    json bad = good;
    breakit(bad);
    out.push_back({bad.dump(), good.dump(), reason});
  };
  add(
      "dlq-1", [](json& e) { e["data"]["tokens"] = "many"; }, "data.tokens");
  add(
      "dlq-2", [](json& e) { e["time"] = "2026-13-01T00:00:00Z"; }, "time", "u-dlq-2");
  add(
      "dlq-3", [](json& e) { e["type"] = "agent.exploded"; }, "type");
  add(
      "dlq-4", [](json& e) { e["data"]["user"].erase("id"); }, "data.user.id", "u-dlq-3");
  add(
      "dlq-5", [](json& e) { e["data"]["cost_usd"] = -1; }, "data.cost_usd");
  {
    std::string full = Good("dlq-6", "u-dlq-4").dump();
    out.push_back({full.substr(0, full.size() / 2), full, "invalid JSON"});
  }
  return out;
}

int64_t HighWatermarkSum(const std::string& brokers, const std::string& topic) {
  Result<int> n = kafka::PartitionCount(brokers, topic, 5000);
  if (!n) return -1;
  int64_t sum = 0;
  for (int p = 0; p < *n; ++p) {
    auto wm = kafka::Watermarks(brokers, topic, p, 5000);
    if (!wm) return -1;
    sum += wm->second;
  }
  return sum;
}

double Metric(Stack& stack, const char* name) {
  return MetricSum(stack.MetricsText(), name).value_or(-1);
}

TEST(DlqE2E, ListFixRedriveOnce) {
  // Valid background events in the same workspace, so that the fixes land among real data.
  gen::GenOptions o;
  o.seed = 777;
  o.events = 3000;
  o.workspaces = 3;
  o.organizations = 2;
  o.users = 100;
  o.end_day = "2026-02-28";
  o.days = 60;
  Dataset data = GenerateDataset(o);
  std::vector<std::string> lines = data.lines, keys = data.keys;
  // Some valid events of the hand-built workspace too (users u-dlq-1.. already exist).
  for (int i = 0; i < 20; ++i) {
    lines.push_back(Good("ok-" + std::to_string(i), "u-dlq-" + std::to_string(1 + i % 2)).dump());
    keys.push_back(kWs);
  }
  const std::vector<Broken> broken = BrokenEvents();
  for (const Broken& b : broken) {
    lines.push_back(b.payload);
    keys.push_back(b.fixed.find(kWs) != std::string::npos ? kWs : "");
  }
  ReferenceModel before(Stack::kToday);
  for (const std::string& l : lines) before.Add(l);
  ASSERT_EQ(before.invalid(), broken.size());

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(4));
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.Produce(lines, keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  const std::string& brokers = stack.bootstrap();
  ASSERT_EQ(Metric(stack, "tally_dlq_produced_total"), static_cast<double>(broken.size()));

  // --- list ---
  CliRun list = RunTally(stack, "dlq-list", {"dlq", "list", "--brokers", brokers});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_NE(list.out.find(std::to_string(broken.size()) + " dead letters in usage-events.dlq"),
            std::string::npos)
      << list.out;
  EXPECT_NE(list.out.find("by reason:"), std::string::npos) << list.out;
  for (const Broken& b : broken) EXPECT_NE(list.out.find(b.reason), std::string::npos) << b.reason;

  CliRun listj = RunTally(stack, "dlq-list-json", {"dlq", "list", "--brokers", brokers, "--json"});
  ASSERT_EQ(listj.exit_code, 0) << listj.Describe();
  json doc = json::parse(listj.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << listj.out;
  ASSERT_EQ(doc["count"], broken.size()) << listj.out;
  std::map<std::string, std::string> fix_of;  // payload -> correction
  for (const Broken& b : broken) fix_of[b.payload] = b.fixed;
  std::set<std::string> seen;
  int64_t by_reason_total = 0;
  for (const auto& [reason, n] : doc["by_reason"].items()) by_reason_total += n.get<int64_t>();
  EXPECT_EQ(by_reason_total, static_cast<int64_t>(broken.size()));
  std::string fixed_file_text;
  for (const json& d : doc["dead_letters"]) {
    const std::string payload = d["payload"];
    ASSERT_TRUE(fix_of.count(payload)) << "unexpected dead letter " << d.dump();
    seen.insert(payload);
    EXPECT_EQ(d["source_topic"], Stack::kTopic);
    EXPECT_FALSE(d["source_partition"].get<std::string>().empty());
    EXPECT_FALSE(d["source_offset"].get<std::string>().empty());
    EXPECT_FALSE(d["reason"].get<std::string>().empty());
    for (const Broken& b : broken) {
      if (b.payload == payload) {
        EXPECT_NE(d["reason"].get<std::string>().find(b.reason), std::string::npos) << d.dump();
      }
    }
    fixed_file_text += fix_of[payload] + "\n";  // in list order
  }
  EXPECT_EQ(seen.size(), broken.size());

  CliRun filtered =
      RunTally(stack, "dlq-list-reason",
               {"dlq", "list", "--brokers", brokers, "--reason", "data.tokens", "--json"});
  ASSERT_EQ(filtered.exit_code, 0) << filtered.Describe();
  json fdoc = json::parse(filtered.out, nullptr, false);
  ASSERT_EQ(fdoc["count"], 1) << filtered.out;
  EXPECT_EQ(fdoc["dead_letters"][0]["payload"], broken[0].payload);
  CliRun raw = RunTally(stack, "dlq-list-raw",
                        {"dlq", "list", "--brokers", brokers, "--reason", "data.tokens", "--raw"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(raw.out, broken[0].payload + "\n");

  // The views before any redrive agree with the reference without the broken events.
  std::vector<MetricsCall> calls;
  for (const MetricsCall& c : AllCombinations(kWs, "u-dlq-1")) {
    if (c.query.entity == "agents" && c.query.metric == "executions") calls.push_back(c);
  }
  ASSERT_EQ(CheckAll(stack.http(), kAdminToken, before, calls), 0);

  // --- redrive, refused: the payloads would be rejected again; nothing is sent ---
  const int64_t high0 = HighWatermarkSum(brokers, Stack::kTopic);
  ASSERT_GT(high0, 0);
  CliRun refused =
      RunTally(stack, "dlq-redrive-refused", {"dlq", "redrive", "--brokers", brokers, "--all"});
  EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
  EXPECT_NE(refused.err.find("would be rejected again"), std::string::npos) << refused.Describe();
  CliRun none = RunTally(stack, "dlq-redrive-none", {"dlq", "redrive", "--brokers", brokers});
  EXPECT_EQ(none.exit_code, 2) << none.Describe();
  CliRun unknown = RunTally(stack, "dlq-redrive-unknown",
                            {"dlq", "redrive", "--brokers", brokers, "--offsets", "0:999999"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.Describe();
  EXPECT_NE(unknown.err.find("no dead letter at 0:999999"), std::string::npos)
      << unknown.Describe();

  // --- redrive the corrections: dry run first, then for real, then again ---
  const std::string fixed = stack.dir().File("fixed.ndjson");
  {
    std::ofstream f(fixed);
    f << fixed_file_text;
  }
  CliRun mismatch = RunTally(
      stack, "dlq-redrive-mismatch",
      {"dlq", "redrive", "--brokers", brokers, "--reason", "data.tokens", "--fixed", fixed});
  EXPECT_EQ(mismatch.exit_code, 2) << mismatch.Describe();  // 1 selected, 6 lines
  CliRun dry =
      RunTally(stack, "dlq-redrive-dry",
               {"dlq", "redrive", "--brokers", brokers, "--all", "--fixed", fixed, "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_NE(dry.out.find("nothing was sent"), std::string::npos) << dry.out;
  EXPECT_EQ(HighWatermarkSum(brokers, Stack::kTopic), high0);

  ReferenceModel after(Stack::kToday);
  for (const std::string& l : lines) after.Add(l);
  for (const Broken& b : broken) after.Add(b.fixed);
  ASSERT_EQ(after.accepted(), before.accepted() + broken.size());
  const double applied0 = Metric(stack, "tally_events_applied_total");

  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("redrive round " + std::to_string(round));
    CliRun redrive = RunTally(stack, "dlq-redrive-" + std::to_string(round),
                              {"dlq", "redrive", "--brokers", brokers, "--all", "--fixed", fixed});
    ASSERT_EQ(redrive.exit_code, 0) << redrive.Describe();
    EXPECT_NE(redrive.out.find("redriven " + std::to_string(broken.size()) + " events"),
              std::string::npos)
        << redrive.out;
    EXPECT_EQ(HighWatermarkSum(brokers, Stack::kTopic),
              high0 + round * static_cast<int64_t>(broken.size()));
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
    EXPECT_EQ(Metric(stack, "tally_events_applied_total"), applied0 + broken.size());
    EXPECT_EQ(Metric(stack, "tally_dlq_produced_total"), static_cast<double>(broken.size()));
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, after, calls), 0);
  }

  // --- a dead letter whose payload is valid now (as after an upgrade): redriven unchanged ---
  {
    kafka::ProducerOptions po;
    po.brokers = brokers;
    auto p = kafka::Producer::Create(po);
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->Produce(
        Stack::kDlqTopic, kWs, Good("dlq-legacy", "u-dlq-9").dump(),
        {{std::string(kafka::kDeadLetterReasonHeader), "legacy: refused by an older tallyd"},
         {std::string(kafka::kDeadLetterSourceTopicHeader), Stack::kTopic},
         {std::string(kafka::kDeadLetterSourcePartitionHeader), "0"},
         {std::string(kafka::kDeadLetterSourceOffsetHeader), "0"}}));
    ASSERT_TRUE((*p)->Flush(10000));
  }
  CliRun legacy = RunTally(stack, "dlq-list-legacy",
                           {"dlq", "list", "--brokers", brokers, "--reason", "legacy", "--json"});
  ASSERT_EQ(legacy.exit_code, 0) << legacy.Describe();
  json ldoc = json::parse(legacy.out, nullptr, false);
  ASSERT_EQ(ldoc["count"], 1) << legacy.out;
  const std::string at = std::to_string(ldoc["dead_letters"][0]["partition"].get<int>()) + ":" +
                         std::to_string(ldoc["dead_letters"][0]["offset"].get<int64_t>());
  after.Add(Good("dlq-legacy", "u-dlq-9").dump());
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("legacy redrive round " + std::to_string(round));
    CliRun redrive = RunTally(stack, "dlq-redrive-legacy-" + std::to_string(round),
                              {"dlq", "redrive", "--brokers", brokers, "--offsets", at});
    ASSERT_EQ(redrive.exit_code, 0) << redrive.Describe();
    EXPECT_NE(redrive.out.find("redriven 1 event to usage-events"), std::string::npos)
        << redrive.out;
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
    EXPECT_EQ(Metric(stack, "tally_events_applied_total"), applied0 + broken.size() + 1);
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, after, calls), 0);
  }
  CliRun final_list =
      RunTally(stack, "dlq-list-final",
               {"dlq", "list", "--broker-addr-file", stack.dir().File("broker.addr")});
  ASSERT_EQ(final_list.exit_code, 0) << final_list.Describe();
  EXPECT_NE(final_list.out.find(std::to_string(broken.size() + 1) + " dead letters"),
            std::string::npos)
      << final_list.out;
}

}  // namespace
}  // namespace tally::integration
