// The JSON Schema's examples must parse and its x-counterexamples must be rejected with the
// field they name: keeps schemas/usage-event.schema.json and EventParser in step.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "event/event_parser.h"

namespace tally::event {
namespace {

using nlohmann::json;

json LoadSchema() {
  std::ifstream in(std::string(TALLY_SOURCE_DIR) + "/schemas/usage-event.schema.json");
  EXPECT_TRUE(in.good()) << "cannot open the schema under " << TALLY_SOURCE_DIR;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(SchemaExamplesTest, SchemaIsDraft202012) {
  json schema = LoadSchema();
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  // The schema's enum of types is exactly what the parser knows.
  std::set<std::string> from_schema;
  for (const json& t : schema["properties"]["type"]["enum"]) from_schema.insert(t);
  std::set<std::string> from_code;
  for (int k = 0; k < kEntityKindCount; ++k) {
    for (int a = 0; a < kActionCount; ++a) {
      from_code.insert(
          std::string(EventTypeName(static_cast<EntityKind>(k), static_cast<Action>(a))));
    }
  }
  EXPECT_EQ(from_schema, from_code);
}

TEST(SchemaExamplesTest, ExamplesParse) {
  json schema = LoadSchema();
  ASSERT_GE(schema["examples"].size(), 4u);
  EventParser parser;
  for (const json& example : schema["examples"]) {
    Result<UsageEvent> e = parser.Parse(example.dump());
    ASSERT_TRUE(e.has_value()) << example.dump() << "\n -> " << e.error().message;
    // Spot-check against the independent reading of the same example.
    EXPECT_EQ(e->id, example["id"].get<std::string>());
    EXPECT_EQ(EventTypeName(e->kind, e->action), example["type"].get<std::string>());
    EXPECT_EQ(e->workspace_id, example["data"]["workspace_id"].get<std::string>());
    const json& uid = example["data"]["user"]["id"];
    EXPECT_EQ(e->user_id, uid.is_string() ? uid.get<std::string>() : uid.dump());
    const json& subject = example["data"][EntityKindName(e->kind)]["id"];
    EXPECT_EQ(e->entity_id, subject.is_string() ? subject.get<std::string>() : subject.dump());
  }
}

TEST(SchemaExamplesTest, CounterexamplesAreRejectedWithTheirField) {
  json schema = LoadSchema();
  const json& cases = schema["x-counterexamples"];
  ASSERT_GE(cases.size(), 12u);
  EventParser parser;
  std::set<std::string> reasons;
  for (const json& c : cases) {
    std::string text = c.contains("raw") ? c["raw"].get<std::string>() : c["event"].dump();
    std::string reason = c["reason"];
    reasons.insert(reason);
    UsageEvent out;
    Status s = parser.ParseInto(text, &out);
    ASSERT_FALSE(s.has_value()) << "accepted: " << text.substr(0, 400);
    EXPECT_EQ(s.error().field, reason) << s.error().message << "\n in " << text.substr(0, 400);
    if (c.contains("category")) {
      EXPECT_EQ(ReasonCategory(s.error()), c["category"].get<std::string>()) << s.error().message;
    }
  }
  EXPECT_GE(reasons.size(), 12u);
}

}  // namespace
}  // namespace tally::event
