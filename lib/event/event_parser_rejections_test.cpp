// The parser's rejections (internal/rejections.h): every reason, its field and its category.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "event/event_parser.h"
#include "event/internal/event_parser_test_fixture.h"

namespace tally::event {
namespace {

using nlohmann::json;
using testing::EventParserTest;
using testing::Full;
using testing::Minimal;

TEST_F(EventParserTest, NestingDepthLimit) {
  auto nested = [](int levels) {  // an unknown field at top level nested `levels` deep
    std::string v = std::string(levels, '[') + "1" + std::string(levels, ']');
    std::string text = Minimal().dump();
    text.insert(1, "\"deep\":" + v + ",");
    return text;
  };
  MustParse(nested(kMaxNestingDepth - 1));  // +1 for the top-level object
  MustReject(nested(kMaxNestingDepth), "deep", "too_large");
  MustReject(nested(5000), "deep", "too_large");
}

TEST_F(EventParserTest, RejectsMissingRequiredFields) {
  for (const char* k : {"specversion", "id", "source", "type", "time"}) {
    json j = Minimal();
    j.erase(k);
    EXPECT_EQ(MustReject(j, k, "missing_field"), std::string(k) + ": required string is missing");
    j[k] = nullptr;
    MustReject(j, k, "missing_field");
  }
  json j = Minimal();
  j.erase("data");
  EXPECT_EQ(MustReject(j, "data", "missing_field"), "data: required object is missing");

  j = Minimal();
  j["data"].erase("workspace_id");
  MustReject(j, "data.workspace_id", "missing_field");
  j = Minimal();
  j["data"].erase("user");
  MustReject(j, "data.user", "missing_field");
  j = Minimal();
  j["data"]["user"] = nullptr;
  MustReject(j, "data.user", "missing_field");
  j = Minimal();
  j["data"]["user"].erase("id");
  EXPECT_EQ(MustReject(j, "data.user.id", "missing_field"),
            "data.user.id: required string or integer is missing");
  j = Minimal();
  j["data"]["user"]["id"] = nullptr;
  MustReject(j, "data.user.id", "missing_field");
  j = Minimal();
  j["data"].erase("agent");
  j["data"]["workflow"] = {{"id", "wf"}};  // the wrong entity does not count
  MustReject(j, "data.agent", "missing_field");
  j = Minimal();
  j["data"]["agent"] = json::object();
  MustReject(j, "data.agent.id", "missing_field");
  j = Minimal();
  j["type"] = "workflow.deleted";
  MustReject(j, "data.workflow", "missing_field");
  j["data"]["workflow"] = {{"id", nullptr}};
  MustReject(j, "data.workflow.id", "missing_field");
}

TEST_F(EventParserTest, RejectsEmptyRequiredStrings) {
  for (const char* k : {"id", "source", "type", "time"}) {
    json j = Minimal();
    j[k] = "";
    EXPECT_EQ(MustReject(j, k, "invalid_value"), std::string(k) + ": must not be empty");
  }
  json j = Minimal();
  j["data"]["workspace_id"] = "";
  MustReject(j, "data.workspace_id", "invalid_value");
  j = Minimal();
  j["data"]["user"]["id"] = "";
  MustReject(j, "data.user.id", "invalid_value");
  j = Minimal();
  j["data"]["agent"]["id"] = "";
  MustReject(j, "data.agent.id", "invalid_value");
}

TEST_F(EventParserTest, RejectsBadValues) {
  json j = Minimal();
  j["specversion"] = "1.0.0";
  EXPECT_EQ(MustReject(j, "specversion", "invalid_value"), "specversion: must be \"1.0\"");
  j["specversion"] = 1.0;
  MustReject(j, "specversion", "invalid_type");

  for (const char* t : {"agent.ran", "agent", "AGENT.CREATED", "workflow.executed2", "x",
                        "agent.created.v2", " agent.created"}) {
    j = Minimal();
    j["type"] = t;
    std::string m = MustReject(j, "type", "unknown_type");
    EXPECT_EQ(m,
              "type: unknown event type (expected agent.* or workflow.* with created, updated, "
              "deleted, executed, copied or shared)");  // the value itself is never echoed
  }

  for (const char* t : {"2026-01-10T08:00:00", "2026-01-10", "2026-13-10T08:00:00Z",
                        "2026-02-29T08:00:00Z", "2026-01-10T24:00:00Z", "yesterday",
                        "2026-01-10T08:00:00+0200", "2026-01-10T08:00:00Z junk"}) {
    j = Minimal();
    j["time"] = t;
    std::string m = MustReject(j, "time", "bad_time");
    EXPECT_TRUE(m.starts_with("time: not an RFC 3339 date-time with offset")) << m;
  }

  for (const char* v : {"everyone", "Private", "", "public"}) {
    j = Minimal();
    j["data"]["agent"]["visibility"] = v;
    MustReject(j, "data.agent.visibility", "invalid_value");
  }
  for (const char* f :
       {"duration_ms", "cost_usd", "message_credits", "integration_credits", "tokens"}) {
    j = Full();
    j["data"][f] = -1;
    EXPECT_EQ(MustReject(j, std::string("data.") + f, "invalid_value"),
              std::string("data.") + f + ": must be >= 0");
    j["data"][f] = -0.5;
    MustReject(j, std::string("data.") + f,
               f == std::string("tokens") ? "invalid_type" : "invalid_value");
  }
  // Integers beyond int64 (tokens: beyond kMaxCount) or beyond 64 bits (ids) are out of range,
  // not malformed.
  std::string text = Full().dump();
  text.replace(text.find("812"), 3, "9223372036854775808");
  MustReject(text, "data.tokens", "out_of_range");
  text = Minimal().dump();
  text.replace(text.find("\"42\""), 4, "123456789012345678901234567890");
  EXPECT_EQ(MustReject(text, "data.user.id", "invalid_value"),
            "data.user.id: integer is out of range");
  text = Minimal().dump();
  text.replace(text.find("\"42\""), 4, "1e30");
  MustReject(text, "data.user.id", "invalid_value");
}

TEST_F(EventParserTest, RejectsWrongTypes) {
  struct Case {
    json::json_pointer ptr;
    json value;
    std::string field;
  } cases[] = {
      {json::json_pointer("/id"), 123, "id"},
      {json::json_pointer("/source"), json::array(), "source"},
      {json::json_pointer("/type"), true, "type"},
      {json::json_pointer("/time"), 1736496000000, "time"},
      {json::json_pointer("/data"), "x", "data"},
      {json::json_pointer("/data/workspace_id"), 1, "data.workspace_id"},
      {json::json_pointer("/data/organization_id"), 7, "data.organization_id"},
      {json::json_pointer("/data/project_id"), json::object(), "data.project_id"},
      {json::json_pointer("/data/user"), json::array(), "data.user"},
      {json::json_pointer("/data/user/id"), true, "data.user.id"},
      {json::json_pointer("/data/user/id"), 42.5, "data.user.id"},
      {json::json_pointer("/data/user/id"), json::object(), "data.user.id"},
      {json::json_pointer("/data/user/name"), 1, "data.user.name"},
      {json::json_pointer("/data/user/email"), false, "data.user.email"},
      {json::json_pointer("/data/user/photo"), json::array(), "data.user.photo"},
      {json::json_pointer("/data/agent"), "agent_1", "data.agent"},
      {json::json_pointer("/data/agent/id"), json::array(), "data.agent.id"},
      {json::json_pointer("/data/agent/name"), 5, "data.agent.name"},
      {json::json_pointer("/data/agent/visibility"), 1, "data.agent.visibility"},
      {json::json_pointer("/data/agent/owner_user_id"), 1.5, "data.agent.owner_user_id"},
      {json::json_pointer("/data/workflow"), 3, "data.workflow"},
      {json::json_pointer("/data/duration_ms"), "1520", "data.duration_ms"},
      {json::json_pointer("/data/tokens"), 12.5, "data.tokens"},
      {json::json_pointer("/data/tokens"), "12", "data.tokens"},
      {json::json_pointer("/data/cost_usd"), true, "data.cost_usd"},
      {json::json_pointer("/data/message_credits"), json::array(), "data.message_credits"},
      {json::json_pointer("/data/integration_credits"), "1", "data.integration_credits"},
      {json::json_pointer("/data/status"), 500, "data.status"},
  };
  for (const Case& c : cases) {
    json j = Minimal();
    j[c.ptr] = c.value;
    MustReject(j, c.field, "invalid_type");
  }
}

TEST_F(EventParserTest, RejectsTooLongStrings) {
  struct Case {
    json::json_pointer ptr;
    size_t limit;
    std::string field;
  } cases[] = {
      {json::json_pointer("/id"), kMaxIdBytes, "id"},
      {json::json_pointer("/source"), kMaxIdBytes, "source"},
      {json::json_pointer("/data/workspace_id"), kMaxIdBytes, "data.workspace_id"},
      {json::json_pointer("/data/organization_id"), kMaxIdBytes, "data.organization_id"},
      {json::json_pointer("/data/project_id"), kMaxIdBytes, "data.project_id"},
      {json::json_pointer("/data/user/id"), kMaxIdBytes, "data.user.id"},
      {json::json_pointer("/data/agent/id"), kMaxIdBytes, "data.agent.id"},
      {json::json_pointer("/data/agent/owner_user_id"), kMaxIdBytes, "data.agent.owner_user_id"},
      {json::json_pointer("/data/user/name"), kMaxTextBytes, "data.user.name"},
      {json::json_pointer("/data/user/email"), kMaxTextBytes, "data.user.email"},
      {json::json_pointer("/data/user/photo"), kMaxTextBytes, "data.user.photo"},
      {json::json_pointer("/data/agent/name"), kMaxTextBytes, "data.agent.name"},
      {json::json_pointer("/data/status"), kMaxTextBytes, "data.status"},
  };
  for (const Case& c : cases) {
    json j = Minimal();
    j[c.ptr] = std::string(c.limit, 'x');
    MustParse(j);
    j[c.ptr] = std::string(c.limit + 1, 'x');
    MustReject(j, c.field, "too_large");
  }
}

TEST_F(EventParserTest, RejectsMalformedMessages) {
  const std::string ok = Minimal().dump();
  MustReject("", "$", "invalid_json");
  MustReject("   ", "$", "invalid_json");
  MustReject("not json", "$", "invalid_json");
  MustReject("[1,2]", "$", "invalid_type");
  MustReject("\"str\"", "$", "invalid_type");
  MustReject("42", "$", "invalid_type");
  MustReject("null", "$", "invalid_type");
  MustReject("nul", "$", "invalid_json");
  MustReject("\"unterminated", "$", "invalid_json");
  MustReject("[1,2] x", "$", "invalid_type");  // not an object either way
  MustReject(ok.substr(0, ok.size() - 1), "$", "invalid_json");
  MustReject(ok + " {}", "$", "invalid_json");
  MustReject(ok + "}", "$", "invalid_json");
  MustReject(ok + "x", "$", "invalid_json");
  MustParse(ok + " \n\t ");  // trailing whitespace is fine
  MustReject("{\"id\" \"x\"}", "$", "invalid_json");
  MustReject("{\"id\":\"x\",}", "$", "invalid_json");

  std::string bad_utf8 = ok;
  bad_utf8.replace(bad_utf8.find("ws_1"), 4, "ws_\xFF");
  MustReject(bad_utf8, "$", "invalid_json");
  std::string control = ok;
  control.replace(control.find("ws_1"), 4, "ws\n1");
  MustReject(control, "$", "invalid_json");

  std::string bad_escape = ok;
  bad_escape.replace(bad_escape.find("ws_1"), 4, "ws\\q");
  MustReject(bad_escape, "data.workspace_id", "invalid_json");

  std::string bad_number = Full().dump();
  bad_number.replace(bad_number.find("812"), 3, "81x");
  MustReject(bad_number, "data.tokens", "invalid_json");
  bad_number = Full().dump();
  bad_number.replace(bad_number.find("1520"), 4, "1e999");
  MustReject(bad_number, "data.duration_ms", "invalid_json");

  // Malformed JSON inside ignored fields is still malformed.
  std::string ignored = ok;
  ignored.insert(1, R"("ext":[1,tru],)");
  MustReject(ignored, "ext", "invalid_json");
  ignored = ok;
  ignored.insert(1, R"("ext":{"a":nul},)");
  MustReject(ignored, "ext", "invalid_json");
  ignored = ok;
  ignored.replace(ignored.find("\"user\""), 6, R"("ext":{"a":"\x"},"user")");
  MustReject(ignored, "data.ext", "invalid_json");

  // Duplicate known keys are ambiguous (which id deduplicates?): rejected.
  std::string dup = ok;
  dup.insert(1, R"("id":"other",)");
  EXPECT_EQ(MustReject(dup, "id", "invalid_json"), "id: duplicate key");
  dup = ok;
  dup.replace(dup.find("\"42\""), 4, R"("42","id":"43")");
  MustReject(dup, "data.user.id", "invalid_json");
  // Duplicate unknown keys are ignored like the keys themselves.
  dup = ok;
  dup.insert(1, R"("x":1,"x":2,)");
  MustParse(dup);
}

TEST(ReasonCategoryTest, ForeignErrorsAreOther) {
  EXPECT_EQ(ReasonCategory(Error{ErrorCode::kInternal, "boom", ""}), "other");
  EXPECT_EQ(ReasonCategory(Error{ErrorCode::kInvalidArgument, "id: something else", "id"}),
            "other");
  EXPECT_EQ(ReasonCategory(Error{ErrorCode::kInvalidArgument, "x: must be >= 0", "id"}), "other");
}

}  // namespace
}  // namespace tally::event
