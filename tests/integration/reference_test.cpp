// Tests of the reference model itself, on tiny hand-written event lists with answers computed by
// hand (in the comments), so that the end-to-end tests compare tally with something trustworthy.

#include "reference.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gen/generator.h"

namespace tally::integration {
namespace {

using nlohmann::json;

json Event(const std::string& id, const std::string& type, const std::string& time,
           const std::string& ws, const std::string& user, const std::string& name = "") {
  json e = {
      {"specversion", "1.0"}, {"id", id}, {"source", "test/src"}, {"type", type}, {"time", time}};
  json data = {{"workspace_id", ws}, {"user", {{"id", user}}}};
  if (!name.empty()) data["user"]["name"] = name;
  std::string kind = type.substr(0, type.find('.'));
  data[kind] = {{"id", kind + "_1"}, {"name", "thing"}};
  e["data"] = data;
  return e;
}

TEST(ReferenceTime, ParsesRfc3339WithOffsets) {
  EXPECT_EQ(RefParseTimeMillis("1970-01-02T00:00:00.5Z"), 86'400'500);
  EXPECT_EQ(RefParseTimeMillis("1970-01-01T00:00:01.123456Z"), 1123);
  EXPECT_EQ(RefParseTimeMillis("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(RefParseTimeMillis("1969-12-31t23:00:00-01:00z").has_value(), false);
  EXPECT_EQ(RefParseTimeMillis("1969-12-31t23:00:00-01:00"), 0);
  EXPECT_EQ(RefParseTimeMillis("1970-01-01 00:00:00z"), 0);
  // 2026-01-15T23:30-02:00 is 2026-01-16T01:30Z.
  EXPECT_EQ(RefParseTimeMillis("2026-01-15T23:30:00-02:00"),
            RefParseTimeMillis("2026-01-16T01:30:00Z"));
  // A leap second stays in its day.
  EXPECT_EQ(*RefParseTimeMillis("2016-12-31T23:59:60Z") / 86'400'000, *RefParseDay("2016-12-31"));
  for (const char* bad :
       {"2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00", "2026-01-01", "2026-01-01T00:00:00+2:00", "2026-01-01T00:00:00.Z",
        "yesterday", "2026-01-01T00:00:00+24:00", "2026-01-01T00:60:00Z", ""}) {
    EXPECT_FALSE(RefParseTimeMillis(bad).has_value()) << bad;
  }
}

TEST(ReferenceTime, DaysAndLabels) {
  EXPECT_EQ(RefParseDay("1970-01-01"), 0);
  EXPECT_EQ(RefParseDay("1970-02-01"), 31);
  EXPECT_FALSE(RefParseDay("2025-02-29").has_value());
  int64_t d = *RefParseDay("2026-03-01");
  EXPECT_EQ(RefDayLabel(d), "2026-03-01");
  EXPECT_EQ(RefBucketLabel(d, "monthly"), "2026-03");
  // 2026-01-01 is a Thursday: ISO week 1 of 2026; 2026 has 53 weeks.
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2026-01-01"), "weekly"), "2026-01");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2025-12-29"), "weekly"), "2026-01");  // its Monday
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2025-12-28"), "weekly"), "2025-52");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2027-01-01"), "weekly"), "2026-53");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2027-01-04"), "weekly"), "2027-01");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2024-12-30"), "weekly"), "2025-01");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2021-01-03"), "weekly"), "2020-53");
  EXPECT_EQ(RefBucketLabel(*RefParseDay("2026-03-01"), "weekly"), "2026-09");
}

TEST(ReferenceValidate, AcceptsAndRejects) {
  RefEvent out;
  json good = Event("e1", "agent.executed", "2026-01-15T10:23:45.123Z", "w", "42", "Jane");
  good["data"]["duration_ms"] = 1520;
  good["data"]["cost_usd"] = 0.5;
  EXPECT_EQ(RefValidate(good.dump(), &out), "");
  EXPECT_EQ(out.kind, "agent");
  EXPECT_EQ(out.action, "executed");
  EXPECT_EQ(out.user_name, "Jane");
  EXPECT_EQ(out.day, *RefParseDay("2026-01-15"));
  EXPECT_EQ(out.duration_ms, 1520.0);

  auto rejected = [&](json e, const std::string& why) {
    EXPECT_EQ(RefValidate(e.dump(), &out), why) << e.dump();
  };
  EXPECT_EQ(RefValidate("{\"specversion\":", &out), "bad json");
  EXPECT_EQ(RefValidate("[1,2]", &out), "not an object");
  json e = good;
  e["specversion"] = "0.3";
  rejected(e, "specversion");
  e = good;
  e.erase("id");
  rejected(e, "id");
  e = good;
  e["id"] = 7;
  rejected(e, "id");
  e = good;
  e["source"] = "";
  rejected(e, "source");
  e = good;
  e["type"] = "agent.ran";
  rejected(e, "type");
  e = good;
  e["type"] = "project.created";
  rejected(e, "type");
  e = good;
  e["time"] = "2026-02-30T00:00:00Z";
  rejected(e, "time");
  e = good;
  e["time"] = 1700000000;
  rejected(e, "time");
  e = good;
  e["data"]["workspace_id"] = nullptr;
  rejected(e, "data.workspace_id");
  e = good;
  e["data"]["user"].erase("id");
  rejected(e, "data.user.id");
  e = good;
  e["data"]["user"]["id"] = true;
  rejected(e, "data.user.id");
  e = good;
  e["data"]["user"]["id"] = 4.5;
  rejected(e, "data.user.id");
  e = good;
  e["data"].erase("agent");
  rejected(e, "data.agent");
  e = good;
  e["type"] = "workflow.executed";  // carries data.agent only
  rejected(e, "data.workflow");
  e = good;
  e["data"]["duration_ms"] = -1;
  rejected(e, "data.duration_ms");
  e = good;
  e["data"]["tokens"] = "12";
  rejected(e, "data.tokens");
  e = good;
  e["data"]["tokens"] = 1.5;
  rejected(e, "data.tokens");
  e = good;
  e["data"]["agent"]["visibility"] = "secret";
  rejected(e, "data.agent.visibility");
  e = good;
  e["id"] = std::string(257, 'i');
  rejected(e, "id");
  e = good;
  e["data"]["user"]["name"] = std::string(70 * 1024, 'x');
  rejected(e, "oversized");

  // null is absent; integer ids become their decimal string.
  e = good;
  e["data"]["user"]["id"] = 42;
  e["data"]["user"]["name"] = nullptr;
  e["data"]["duration_ms"] = nullptr;
  e["data"]["tokens"] = 12;
  e["data"]["workflow"] = {{"name", "not the subject: id optional"}};
  EXPECT_EQ(RefValidate(e.dump(), &out), "");
  EXPECT_EQ(out.user_id, "42");
  EXPECT_EQ(out.user_name, "");
  EXPECT_FALSE(out.duration_ms.has_value());
  e["data"]["agent"] = nullptr;
  rejected(e, "data.agent");
}

TEST(ReferenceModel, DedupesAndDropsInvalid) {
  ReferenceModel ref("2026-03-01");
  json a = Event("e1", "agent.executed", "2026-03-01T10:00:00Z", "w1", "u1");
  EXPECT_EQ(ref.Add(a.dump()), RefVerdict::kAccepted);
  json dup = Event("e1", "agent.executed", "2026-02-01T10:00:00Z", "w1", "u2");
  EXPECT_EQ(ref.Add(dup.dump()), RefVerdict::kDuplicate);
  json other_source = dup;
  other_source["source"] = "other";  // same id, other source: a different event
  EXPECT_EQ(ref.Add(other_source.dump()), RefVerdict::kAccepted);
  EXPECT_EQ(ref.Add("not json"), RefVerdict::kInvalid);
  EXPECT_EQ(ref.accepted(), 2u);
  EXPECT_EQ(ref.duplicates(), 1u);
  EXPECT_EQ(ref.invalid(), 1u);
}

// Today is Sunday 2026-03-01. 7d = 02-23..03-01, 30d = 01-31..03-01, 90d = 2025-12-02..03-01.
class ReferenceQueries : public ::testing::Test {
 protected:
  void SetUp() override {
    auto add = [&](json e) { ASSERT_EQ(ref_.Add(e.dump()), RefVerdict::kAccepted) << e.dump(); };
    add(Event("e1", "agent.executed", "2026-03-01T10:00:00Z", "w1", "u1", "Ann"));
    add(Event("e2", "agent.executed", "2026-02-28T10:00:00Z", "w1", "u1"));
    // 2026-02-23T00:00+01:00 is 2026-02-22T23:00Z: outside 7d.
    add(Event("e3", "agent.executed", "2026-02-23T00:00:00+01:00", "w1", "u2", "Bob"));
    add(Event("e4", "agent.created", "2026-02-25T08:00:00Z", "w1", "u2"));
    json e5 = Event("e5", "workflow.executed", "2026-02-26T08:00:00Z", "w1", "u1");
    e5["data"]["duration_ms"] = 100;
    add(e5);
    json e6 = Event("e6", "workflow.executed", "2026-02-27T08:00:00Z", "w1", "u2");
    e6["data"]["duration_ms"] = 300.5;
    add(e6);
    add(Event("e7", "workflow.executed", "2026-02-27T09:00:00Z", "w1", "u2"));  // no duration
    EXPECT_EQ(ref_.Add(Event("e1", "agent.executed", "2026-03-01T11:00:00Z", "w1", "u2").dump()),
              RefVerdict::kDuplicate);
    add(Event("e9", "agent.executed", "2026-03-01T10:00:00Z", "w2", "u1", "Zed"));
    add(Event("e10", "agent.shared", "2025-12-15T10:00:00Z", "w1", "u1"));
    add(Event("e11", "agent.executed", "2026-01-10T10:00:00Z", "w1", "u1", "Ann B"));
    add(Event("e12", "agent.updated", "2026-01-01T10:00:00Z", "w1", "u2", "Bobby"));
  }

  RefAnswer Ask(const std::string& entity, const std::string& metric, const std::string& agg,
                const std::string& period, const std::string& group_by = "",
                const std::string& granularity = "daily",
                std::optional<std::string> user = std::nullopt) {
    RefQuery q;
    q.workspace_id = "w1";
    q.entity = entity;
    q.metric = metric;
    q.aggregation = agg;
    q.period = period;
    q.group_by = group_by;
    q.granularity = granularity;
    q.user_id = user;
    return ref_.Answer(q);
  }

  ReferenceModel ref_{"2026-03-01"};
};

TEST_F(ReferenceQueries, TotalsByPeriod) {
  RefAnswer a = Ask("agents", "executions", "count", "7d");  // e1, e2
  EXPECT_EQ(a.total, 2);
  EXPECT_EQ(a.from, "2026-02-23");
  EXPECT_EQ(a.to, "2026-03-01");
  EXPECT_TRUE(a.rows.empty());
  a = Ask("agents", "executions", "count", "30d");  // + e3
  EXPECT_EQ(a.total, 3);
  EXPECT_EQ(a.from, "2026-01-31");
  a = Ask("agents", "executions", "count", "90d");  // + e11
  EXPECT_EQ(a.total, 4);
  EXPECT_EQ(a.from, "2025-12-02");
  a = Ask("agents", "executions", "sum", "all");  // first day of w1 is e10's
  EXPECT_EQ(a.total, 4);
  EXPECT_EQ(a.from, "2025-12-15");
  EXPECT_EQ(Ask("agents", "executions", "avg", "all").total, 1);
  EXPECT_EQ(Ask("agents", "created", "count", "7d").total, 1);
  EXPECT_EQ(Ask("agents", "copies", "count", "all").total, 0);
  EXPECT_EQ(Ask("agents", "copies", "avg", "all").total, 0);
  EXPECT_EQ(Ask("agents", "shares", "count", "90d").total, 1);
  EXPECT_EQ(Ask("agents", "shares", "count", "30d").total, 0);
  EXPECT_EQ(Ask("workflows", "executions", "count", "7d").total, 3);
  EXPECT_EQ(Ask("workflows", "avg_duration", "count", "7d").total, 2);
  EXPECT_EQ(Ask("workflows", "avg_duration", "sum", "7d").total, 400.5);
  EXPECT_EQ(Ask("workflows", "avg_duration", "avg", "7d").total, 200.25);
  EXPECT_EQ(Ask("workflows", "avg_duration", "avg", "7d", "", "daily", "u2").total, 300.5);
  EXPECT_EQ(Ask("agents", "executions", "count", "all", "", "daily", "u2").total, 1);
  EXPECT_EQ(Ask("agents", "executions", "count", "all", "", "daily", "nobody").total, 0);
}

TEST_F(ReferenceQueries, GroupByUser) {
  RefAnswer a = Ask("agents", "executions", "count", "90d", "user");
  ASSERT_EQ(a.rows.size(), 2u);
  // u1: e1, e2, e11; latest named event of u1 is e1 ("Ann", 03-01) over e11 ("Ann B", 01-10).
  EXPECT_EQ(a.rows[0].key, "u1");
  EXPECT_EQ(a.rows[0].user_name, "Ann");
  EXPECT_EQ(a.rows[0].value, 3);
  // u2: e3 ("Bob", 02-22) is later than e12 ("Bobby", 01-01); the duplicate of e1 is ignored.
  EXPECT_EQ(a.rows[1].key, "u2");
  EXPECT_EQ(a.rows[1].user_name, "Bob");
  EXPECT_EQ(a.rows[1].value, 1);
  EXPECT_EQ(a.total, 4);

  a = Ask("agents", "executions", "count", "7d", "user");  // u2's e3 falls outside
  ASSERT_EQ(a.rows.size(), 1u);
  EXPECT_EQ(a.rows[0].key, "u1");

  a = Ask("workflows", "executions", "avg", "7d", "user", "daily", "u2");
  ASSERT_EQ(a.rows.size(), 1u);
  EXPECT_EQ(a.rows[0].key, "u2");
  EXPECT_EQ(a.rows[0].value, 1);

  a = Ask("workflows", "avg_duration", "avg", "7d", "user");  // u2 300.5, u1 100
  ASSERT_EQ(a.rows.size(), 2u);
  EXPECT_EQ(a.rows[0].key, "u2");
  EXPECT_EQ(a.rows[0].value, 300.5);
  EXPECT_EQ(a.rows[1].value, 100);
}

TEST_F(ReferenceQueries, GroupByDate) {
  RefAnswer a = Ask("agents", "executions", "count", "7d", "date", "daily");
  ASSERT_EQ(a.rows.size(), 7u);
  EXPECT_EQ(a.rows[0].key, "2026-02-23");
  EXPECT_EQ(a.rows[5].key, "2026-02-28");
  EXPECT_EQ(a.rows[5].value, 1);
  EXPECT_EQ(a.rows[6].key, "2026-03-01");
  EXPECT_EQ(a.rows[6].value, 1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.rows[i].value, 0) << a.rows[i].key;

  // 30d = Sat 01-31 .. Sun 03-01: ISO weeks 2026-05 (01-26..02-01) to 2026-09 (02-23..03-01).
  a = Ask("agents", "executions", "count", "30d", "date", "weekly");
  ASSERT_EQ(a.rows.size(), 5u);
  EXPECT_EQ(a.rows[0].key, "2026-05");
  EXPECT_EQ(a.rows[3].key, "2026-08");
  EXPECT_EQ(a.rows[3].value, 1);  // e3 on 02-22
  EXPECT_EQ(a.rows[4].key, "2026-09");
  EXPECT_EQ(a.rows[4].value, 2);
  EXPECT_EQ(a.total, 3);

  a = Ask("agents", "executions", "count", "7d", "date", "monthly");
  ASSERT_EQ(a.rows.size(), 2u);
  EXPECT_EQ(a.rows[0].key, "2026-02");
  EXPECT_EQ(a.rows[0].value, 1);
  EXPECT_EQ(a.rows[1].key, "2026-03");
  EXPECT_EQ(a.rows[1].value, 1);

  // all = 2025-12-15 .. 2026-03-01: months 2025-12, 2026-01, 2026-02, 2026-03.
  a = Ask("agents", "executions", "avg", "all", "date", "monthly");
  ASSERT_EQ(a.rows.size(), 4u);
  EXPECT_EQ(a.rows[0].key, "2025-12");
  EXPECT_EQ(a.rows[0].value, 0);
  EXPECT_EQ(a.rows[1].value, 1);  // e11
  EXPECT_EQ(a.rows[2].value, 1);

  a = Ask("workflows", "avg_duration", "avg", "7d", "date", "daily");
  ASSERT_EQ(a.rows.size(), 7u);
  EXPECT_EQ(a.rows[3].key, "2026-02-26");
  EXPECT_EQ(a.rows[3].value, 100);
  EXPECT_EQ(a.rows[4].value, 300.5);
}

// The generator labels every line it makes (valid, verbatim duplicate, malformed of some kind),
// independently of the reference: the two must agree on every line of a long stream.
TEST(ReferenceVsGenerator, AgreesWithTheGeneratorsLabels) {
  gen::GenOptions o;
  o.seed = 7;
  o.events = 60000;
  o.workspaces = 6;
  o.users = 400;
  o.end_day = "2026-03-01";
  o.days = 120;
  o.duplicate_fraction = 0.03;
  o.malformed_fraction = 0.02;
  gen::Generator g(o);
  ReferenceModel ref("2026-03-01");
  gen::GeneratedLine line;
  int mismatches = 0;
  std::map<std::string, int> malformed_kinds;
  while (g.Next(&line)) {
    RefVerdict want = line.malformed   ? RefVerdict::kInvalid
                      : line.duplicate ? RefVerdict::kDuplicate
                                       : RefVerdict::kAccepted;
    RefVerdict got = ref.Add(line.json);
    if (line.malformed) malformed_kinds[gen::MalformedKindName(line.malformed_kind)]++;
    if (got != want && ++mismatches <= 10) {
      RefEvent e;
      ADD_FAILURE() << "generator says " << static_cast<int>(want) << " ("
                    << gen::MalformedKindName(line.malformed_kind) << "), reference says "
                    << static_cast<int>(got) << " (" << RefValidate(line.json, &e)
                    << "): " << line.json.substr(0, 400);
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(malformed_kinds.size(), static_cast<size_t>(gen::kMalformedKindCount));
  EXPECT_GT(ref.accepted(), 50000u);
  // Every accepted event lies inside the generator's 120 days ending 2026-03-01.
  for (const RefEvent& e : ref.events()) {
    ASSERT_LE(e.day, ref.today());
    ASSERT_GT(e.day, ref.today() - 120);
  }
}

}  // namespace
}  // namespace tally::integration
