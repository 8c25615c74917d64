#include "event/event_parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "common/calendar.h"
#include "common/clock.h"
#include "event/internal/event_parser_test_fixture.h"

namespace tally::event {
namespace {

using nlohmann::json;

using testing::EventParserTest;
using testing::Full;
using testing::Minimal;

TEST_F(EventParserTest, ParsesEveryFieldOfTheDesignExample) {
  UsageEvent e = MustParse(Full());
  EXPECT_EQ(e.id, "evt_01HZX3K9Q4");
  EXPECT_EQ(e.source, "athena/agents-api");
  EXPECT_EQ(e.kind, EntityKind::kAgent);
  EXPECT_EQ(e.action, Action::kExecuted);
  EXPECT_EQ(e.time_ms, 1768472625123);  // Python: datetime(2026,1,15,10,23,45,123000,UTC)
  EXPECT_EQ(e.workspace_id, "8360bf61-4604-4f22-99dc-2afa910fd8c7");
  EXPECT_EQ(e.organization_id, "org_7");
  EXPECT_EQ(e.project_id, "proj_12");
  EXPECT_EQ(e.user_id, "42");
  EXPECT_EQ(e.user_name, "Jane Smith");
  EXPECT_EQ(e.user_email, "jane@company.com");
  EXPECT_EQ(e.user_photo, "https://example.com/u/42.jpg");
  EXPECT_EQ(e.entity_id, "agent_abc123");
  EXPECT_EQ(e.entity_name, "Support Agent");
  EXPECT_EQ(e.entity_visibility, "workspace");
  EXPECT_EQ(e.entity_owner_user_id, "42");
  EXPECT_EQ(e.duration_ms, 1520.0);
  EXPECT_EQ(e.tokens, 812);
  EXPECT_EQ(e.cost_usd, 0.0123);
  EXPECT_EQ(e.message_credits, 3.0);
  EXPECT_EQ(e.integration_credits, 1.0);
  EXPECT_EQ(e.status, "ok");
  EXPECT_FALSE(e.is_error());
}

TEST_F(EventParserTest, MinimalEventLeavesOptionalsEmpty) {
  UsageEvent e = MustParse(Minimal());
  EXPECT_EQ(e.kind, EntityKind::kAgent);
  EXPECT_EQ(e.action, Action::kCreated);
  EXPECT_EQ(e.time_ms, 1768032000000);
  EXPECT_EQ(e.entity_id, "agent_1");
  EXPECT_TRUE(e.organization_id.empty());
  EXPECT_TRUE(e.project_id.empty());
  EXPECT_TRUE(e.user_name.empty());
  EXPECT_TRUE(e.entity_visibility.empty());
  EXPECT_FALSE(e.duration_ms.has_value());
  EXPECT_FALSE(e.tokens.has_value());
  EXPECT_FALSE(e.cost_usd.has_value());
  EXPECT_FALSE(e.message_credits.has_value());
  EXPECT_FALSE(e.integration_credits.has_value());
  EXPECT_TRUE(e.status.empty());
}

TEST_F(EventParserTest, ReusedOutputIsFullyOverwritten) {
  UsageEvent e;
  ASSERT_TRUE(parser_.ParseInto(Full().dump(), &e));
  ASSERT_TRUE(parser_.ParseInto(Minimal().dump(), &e));
  EXPECT_EQ(e.id, "evt_1");
  EXPECT_EQ(e.action, Action::kCreated);
  EXPECT_TRUE(e.user_name.empty());
  EXPECT_TRUE(e.entity_name.empty());
  EXPECT_TRUE(e.entity_owner_user_id.empty());
  EXPECT_TRUE(e.organization_id.empty());
  EXPECT_FALSE(e.tokens.has_value());
  EXPECT_FALSE(e.cost_usd.has_value());
  EXPECT_TRUE(e.status.empty());
  // A rejection in between does not poison the next parse.
  ASSERT_FALSE(parser_.ParseInto("{\"id\": ", &e));
  ASSERT_TRUE(parser_.ParseInto(Full().dump(), &e));
  EXPECT_EQ(e.user_name, "Jane Smith");
}

TEST_F(EventParserTest, ParseConvenienceMatchesParseInto) {
  Result<UsageEvent> r = parser_.Parse(Full().dump());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->entity_id, "agent_abc123");
  Result<UsageEvent> bad = parser_.Parse("[]");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "$");
}

TEST_F(EventParserTest, EveryTypeMapsToItsKindAndAction) {
  const char* actions[] = {"created", "updated", "deleted", "executed", "copied", "shared"};
  for (int k = 0; k < 2; ++k) {
    for (int a = 0; a < 6; ++a) {
      json j = Minimal();
      std::string kind = k == 0 ? "agent" : "workflow";
      j["type"] = kind + "." + actions[a];
      j["data"].erase("agent");
      j["data"][kind] = {{"id", "e1"}};
      UsageEvent e = MustParse(j);
      EXPECT_EQ(static_cast<int>(e.kind), k);
      EXPECT_EQ(static_cast<int>(e.action), a);
      EXPECT_EQ(e.entity_id, "e1");
      EXPECT_EQ(EventTypeName(e.kind, e.action), kind + "." + actions[a]);
      EXPECT_STREQ(EntityKindName(e.kind), kind.c_str());
      EXPECT_STREQ(ActionName(e.action), actions[a]);
    }
  }
}

TEST(EventTypeTest, ParseEventTypeIsExact) {
  EntityKind k = EntityKind::kAgent;
  Action a = Action::kCreated;
  EXPECT_TRUE(ParseEventType("workflow.copied", &k, &a));
  EXPECT_EQ(k, EntityKind::kWorkflow);
  EXPECT_EQ(a, Action::kCopied);
  for (const char* bad : {"", "agent", "agent.", "agent.run", "Agent.created", "agent.created ",
                          "workflows.created", "agent.executed.x", "task.created"}) {
    EXPECT_FALSE(ParseEventType(bad, &k, &a)) << bad;
  }
  EXPECT_EQ(k, EntityKind::kWorkflow);  // untouched on failure
}

TEST_F(EventParserTest, WorkflowSubjectAndOtherEntityIgnored) {
  json j = Minimal();
  j["type"] = "workflow.executed";
  j["data"]["workflow"] = {{"id", "wf_9"}, {"name", "Nightly"}, {"visibility", "private"}};
  j["data"]["duration_ms"] = 84000.5;
  j["data"]["status"] = "error";
  UsageEvent e = MustParse(j);  // data.agent is present but not the subject
  EXPECT_EQ(e.kind, EntityKind::kWorkflow);
  EXPECT_EQ(e.entity_id, "wf_9");
  EXPECT_EQ(e.entity_name, "Nightly");
  EXPECT_EQ(e.entity_visibility, "private");
  EXPECT_EQ(e.duration_ms, 84000.5);
  EXPECT_TRUE(e.is_error());
}

TEST_F(EventParserTest, KeysInAnyOrder) {
  // data before type: the subject is chosen after the whole object is read.
  std::string text =
      R"({"data":{"workflow":{"id":"wf"},"user":{"id":"u"},"agent":{"id":"ag"},"workspace_id":"w"},)"
      R"("time":"2026-01-10T08:00:00Z","type":"workflow.updated","source":"s","id":"i",)"
      R"("specversion":"1.0"})";
  UsageEvent e = MustParse(text);
  EXPECT_EQ(e.entity_id, "wf");
  EXPECT_EQ(e.action, Action::kUpdated);
}

TEST_F(EventParserTest, NumericIdsBecomeDecimalStrings) {
  json j = Minimal();
  j["data"]["user"]["id"] = 1001;
  j["data"]["agent"]["owner_user_id"] = 1001;
  UsageEvent e = MustParse(j);
  EXPECT_EQ(e.user_id, "1001");
  EXPECT_EQ(e.entity_owner_user_id, "1001");

  auto user_id_of = [&](const char* literal) {
    std::string text = Minimal().dump();
    size_t pos = text.find("\"42\"");
    text.replace(pos, 4, literal);
    return MustParse(text).user_id;
  };
  EXPECT_EQ(user_id_of("0"), "0");
  EXPECT_EQ(user_id_of("-5"), "-5");
  EXPECT_EQ(user_id_of("42.0"), "42");
  EXPECT_EQ(user_id_of("4.2e1"), "42");
  EXPECT_EQ(user_id_of("9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(user_id_of("18446744073709551615"), "18446744073709551615");
  EXPECT_EQ(user_id_of("-9223372036854775808"), "-9223372036854775808");

  json agent_num = Minimal();
  agent_num["data"]["agent"]["id"] = 12345;
  EXPECT_EQ(MustParse(agent_num).entity_id, "12345");
}

TEST_F(EventParserTest, TimeOffsetsAreConvertedToUtcMillis) {
  // Expected values computed with Python's datetime.
  struct Case {
    const char* time;
    int64_t ms;
  } cases[] = {
      {"2026-01-15T12:00:00+02:00", 1768471200000},
      {"2026-01-11T09:30:00.5-05:00", 1768141800500},
      {"2026-01-13T23:59:59.999999Z", 1768348799999},
      {"1969-12-31T23:59:59.5Z", -500},
      {"2026-01-10t08:00:00z", 1768032000000},
  };
  parser_.set_limits(Limits{.min_time_ms = INT64_MIN});  // 1969 is before the default floor
  for (const Case& c : cases) {
    json j = Minimal();
    j["time"] = c.time;
    EXPECT_EQ(MustParse(j).time_ms, c.ms) << c.time;
  }
}

TEST_F(EventParserTest, NullOptionalsAreAbsent) {
  json j = Full();
  for (const char* k : {"organization_id", "project_id", "duration_ms", "tokens", "cost_usd",
                        "message_credits", "integration_credits", "status", "workflow"}) {
    j["data"][k] = nullptr;
  }
  for (const char* k : {"name", "email", "photo"}) j["data"]["user"][k] = nullptr;
  for (const char* k : {"name", "visibility", "owner_user_id"}) j["data"]["agent"][k] = nullptr;
  UsageEvent e = MustParse(j);
  EXPECT_TRUE(e.organization_id.empty());
  EXPECT_TRUE(e.user_name.empty());
  EXPECT_TRUE(e.user_email.empty());
  EXPECT_TRUE(e.entity_visibility.empty());
  EXPECT_TRUE(e.entity_owner_user_id.empty());
  EXPECT_FALSE(e.tokens.has_value());
  EXPECT_FALSE(e.duration_ms.has_value());
  EXPECT_TRUE(e.status.empty());
}

TEST_F(EventParserTest, UnknownFieldsAreIgnored) {
  json j = Minimal();
  j["datacontenttype"] = "application/json";
  j["subject"] = "agent_1";
  j["traceparent"] = "00-abc";
  j["x"] = {{"nested", {1, 2.5, true, false, nullptr, {{"a", "b"}}}}};
  j["data"]["extra"] = "ok";
  j["data"]["user"]["locale"] = "en";
  j["data"]["agent"]["tags"] = {"a"};
  UsageEvent e = MustParse(j);
  EXPECT_EQ(e.id, "evt_1");
  // Ignored numbers may be anything JSON allows, even beyond 64 bits.
  std::string text = Minimal().dump();
  text.insert(1, R"("big": 123456789012345678901234567890, )");
  MustParse(text);
}

TEST_F(EventParserTest, StringsAreUnescapedAndUtf8Kept) {
  std::string text = Minimal().dump();
  text.replace(text.find("\"42\""), 4,
               R"("42", "name": "Jos\u00e9 \"JJ\" O\u2019Neil\nline", "email": "ü@x")");
  UsageEvent e = MustParse(text);
  EXPECT_EQ(e.user_name, "Jos\xC3\xA9 \"JJ\" O\xE2\x80\x99Neil\nline");
  EXPECT_EQ(e.user_email, "\xC3\xBC@x");
  // Escaped key names match too.
  std::string escaped = Minimal().dump();
  escaped.replace(escaped.find("\"workspace_id\""), 14, R"("workspace\u005fid")");
  EXPECT_EQ(MustParse(escaped).workspace_id, "ws_1");
}

TEST_F(EventParserTest, NumbersAtTheirEdges) {
  json j = Full();
  j["data"]["tokens"] = 0;
  j["data"]["cost_usd"] = 0;
  j["data"]["duration_ms"] = 1e12;
  UsageEvent e = MustParse(j);
  EXPECT_EQ(e.tokens, 0);
  EXPECT_EQ(e.cost_usd, 0.0);
  EXPECT_EQ(e.duration_ms, 1e12);
  std::string text = Full().dump();
  text.replace(text.find("812"), 3, "8.12e2");
  EXPECT_EQ(MustParse(text).tokens, 812);
  text = Full().dump();
  text.replace(text.find("812"), 3, "1000000000000");
  EXPECT_EQ(MustParse(text).tokens, kMaxCount);
  text = Full().dump();
  text.replace(text.find("812"), 3, "1e12");
  EXPECT_EQ(MustParse(text).tokens, kMaxCount);
  text = Full().dump();
  text.replace(text.find("812"), 3, "-0");
  EXPECT_EQ(MustParse(text).tokens, 0);
  // -0 amounts are read as +0 (a sum never shows "-0").
  text = Full().dump();
  text.replace(text.find("0.0123"), 6, "-0.0");
  e = MustParse(text);
  ASSERT_TRUE(e.cost_usd.has_value());
  EXPECT_FALSE(std::signbit(*e.cost_usd));
}

TEST_F(EventParserTest, MeasuresAboveTheirMaximumAreOutOfRange) {
  struct Case {
    const char* field;
    const char* max;    // accepted
    const char* above;  // rejected
    const char* detail;
  };
  for (const Case& c : {Case{"tokens", "1000000000000", "1000000000001", "at most 1e12"},
                        Case{"duration_ms", "1e12", "1000000000000.5", "at most 1e12"},
                        Case{"message_credits", "1e12", "1.0000000001e12", "at most 1e12"},
                        Case{"integration_credits", "1e12", "2e12", "at most 1e12"},
                        Case{"cost_usd", "1e6", "1000000.01", "at most 1e6"}}) {
    SCOPED_TRACE(c.field);
    json j = Full();
    j["data"][c.field] = 7;
    const std::string base = j.dump();
    const std::string needle = std::string("\"") + c.field + "\":7";
    auto with = [&](const char* value) {
      std::string text = base;
      text.replace(text.find(needle), needle.size(), std::string("\"") + c.field + "\":" + value);
      return text;
    };
    MustParse(with(c.max));
    const std::string path = std::string("data.") + c.field;
    EXPECT_EQ(MustReject(with(c.above), path, "out_of_range"),
              path + ": value out of range (" + c.detail + ")");
    for (const char* huge : {"1e300", "1.7e308", "9223372036854775807", "9223372036854775808",
                             "18446744073709551616"}) {
      MustReject(with(huge), path, "out_of_range");
    }
    // Not JSON numbers at all: rejected as malformed, never read as infinities.
    for (const char* bad : {"NaN", "Infinity", "-Infinity", "1e999"}) {
      UsageEvent e;
      Status s = parser_.ParseInto(with(bad), &e);
      ASSERT_FALSE(s.has_value()) << bad;
      EXPECT_EQ(ReasonCategory(s.error()), "invalid_json") << s.error().message;
    }
    // As strings they have the wrong type.
    for (const char* bad : {"\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1e999\""}) {
      MustReject(with(bad), path, "invalid_type");
    }
  }
}

TEST(EventTimeLimitsTest, DefaultsAre2000AndOneHourAhead) {
  Limits limits;
  EXPECT_EQ(limits.min_time_ms, *ParseRfc3339Millis("2000-01-01T00:00:00Z"));
  EXPECT_EQ(limits.max_future_ms, 3'600'000);
  EXPECT_EQ(limits.clock, nullptr);
}

TEST(EventTimeLimitsTest, TimesOutsideTheBoundsAreRejected) {
  const Clock clock = Clock::Fixed(*ParseRfc3339Millis("2026-03-01T12:00:00Z"));
  EventParser parser(Limits{.clock = &clock});
  auto at = [](const char* time) {
    json j = Minimal();
    j["time"] = time;
    return j.dump();
  };
  UsageEvent e;
  for (const char* ok :
       {"2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00", "2026-03-01T13:00:00Z",
        "2026-03-01T13:00:00.000Z", "2026-03-01T14:00:00+01:00"}) {
    EXPECT_TRUE(parser.ParseInto(at(ok), &e).has_value()) << ok;
  }
  for (const char* bad :
       {"0000-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:59:59+01:00",
        "2026-03-01T13:00:00.001Z", "9999-12-31T23:59:59Z", "2027-01-01T00:00:00Z"}) {
    Status s = parser.ParseInto(at(bad), &e);
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().field, "time");
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(ReasonCategory(s.error()), "time_out_of_range") << s.error().message;
    EXPECT_TRUE(s.error().message.starts_with("time: time out of range (")) << s.error().message;
    EXPECT_EQ(s.error().message.find(bad), std::string::npos) << "echoes the value";
  }
  EXPECT_EQ(parser.ParseInto(at("1999-12-31T23:59:59Z"), &e).error().message,
            "time: time out of range (before 2000-01-01T00:00:00Z)");

  // Other bounds, set later.
  parser.set_limits(Limits{.min_time_ms = *ParseRfc3339Millis("2026-01-01T00:00:00Z"),
                           .max_future_ms = 0,
                           .clock = &clock});
  EXPECT_FALSE(parser.ParseInto(at("2025-12-31T23:59:59Z"), &e).has_value());
  EXPECT_TRUE(parser.ParseInto(at("2026-03-01T12:00:00Z"), &e).has_value());
  EXPECT_FALSE(parser.ParseInto(at("2026-03-01T12:00:00.001Z"), &e).has_value());
  EXPECT_EQ(parser.limits().max_future_ms, 0);

  // A huge skew does not overflow.
  parser.set_limits(Limits{.max_future_ms = INT64_MAX, .clock = &clock});
  EXPECT_TRUE(parser.ParseInto(at("9999-12-31T23:59:59Z"), &e).has_value());
}

TEST(EventTimeLimitsTest, DefaultParserUsesTheSystemClock) {
  EventParser parser;
  json j = Minimal();
  j["time"] = FormatRfc3339Millis(Clock().NowMillis() + 2 * 3'600'000);
  EXPECT_FALSE(parser.Parse(j.dump()).has_value());
  j["time"] = FormatRfc3339Millis(Clock().NowMillis() - 60'000);
  EXPECT_TRUE(parser.Parse(j.dump()).has_value());
}

TEST(ParseDurationMillisTest, UnitsAndErrors) {
  EXPECT_EQ(ParseDurationMillis("1h"), 3'600'000);
  EXPECT_EQ(ParseDurationMillis("30m"), 1'800'000);
  EXPECT_EQ(ParseDurationMillis("3600s"), 3'600'000);
  EXPECT_EQ(ParseDurationMillis("3600"), 3'600'000);
  EXPECT_EQ(ParseDurationMillis("250ms"), 250);
  EXPECT_EQ(ParseDurationMillis("2d"), 172'800'000);
  EXPECT_EQ(ParseDurationMillis("0s"), 0);
  for (const char* bad : {"", "h", "-1h", "1.5h", "1 h", "1H", "1w", "99999999999999999999s",
                          "9223372036854775807d"}) {
    EXPECT_FALSE(ParseDurationMillis(bad).has_value()) << bad;
  }
}

TEST_F(EventParserTest, LimitsAreInclusive) {
  json j = Minimal();
  j["id"] = std::string(kMaxIdBytes, 'i');
  j["data"]["user"]["name"] = std::string(kMaxTextBytes, 'n');
  UsageEvent e = MustParse(j);
  EXPECT_EQ(e.id.size(), kMaxIdBytes);
  EXPECT_EQ(e.user_name.size(), kMaxTextBytes);
  // Multi-byte characters count in bytes: 129 x "é" = 258 bytes.
  std::string accents;
  for (int i = 0; i < 129; ++i) accents += "\xC3\xA9";
  j = Minimal();
  j["source"] = accents;
  MustReject(j, "source", "too_large");

  // A message of exactly kMaxEventBytes is accepted; one byte more is not.
  std::string text = Minimal().dump();
  text.insert(text.size() - 1, ",\"pad\":\"\"");
  text.insert(text.size() - 2, std::string(kMaxEventBytes - text.size(), 'p'));
  ASSERT_EQ(text.size(), kMaxEventBytes);
  MustParse(text);
  text.insert(text.size() - 2, "p");
  MustReject(text, "$", "too_large");
}

}  // namespace
}  // namespace tally::event
