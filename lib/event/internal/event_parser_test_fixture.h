#pragma once
// For the parser's tests only: the design example events and a fixture that expects a parse or
// a rejection (field, category, error code).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "event/event_parser.h"

namespace tally::event::testing {

using nlohmann::json;

// Events are built with nlohmann::json, an independent parser/serializer.
inline json Minimal() {
  return json::parse(R"({
    "specversion": "1.0", "id": "evt_1", "source": "athena/agents-api",
    "type": "agent.created", "time": "2026-01-10T08:00:00Z",
    "data": {"workspace_id": "ws_1", "user": {"id": "42"}, "agent": {"id": "agent_1"}}
  })");
}

inline json Full() {
  return json::parse(R"({
    "specversion": "1.0", "id": "evt_01HZX3K9Q4", "source": "athena/agents-api",
    "type": "agent.executed", "time": "2026-01-15T10:23:45.123Z",
    "data": {
      "workspace_id": "8360bf61-4604-4f22-99dc-2afa910fd8c7",
      "organization_id": "org_7", "project_id": "proj_12",
      "user": {"id": "42", "name": "Jane Smith", "email": "jane@company.com",
               "photo": "https://example.com/u/42.jpg"},
      "agent": {"id": "agent_abc123", "name": "Support Agent", "visibility": "workspace",
                "owner_user_id": "42"},
      "duration_ms": 1520, "tokens": 812, "cost_usd": 0.0123, "message_credits": 3,
      "integration_credits": 1, "status": "ok"
    }
  })");
}

class EventParserTest : public ::testing::Test {
 protected:
  UsageEvent MustParse(const std::string& text) {
    UsageEvent e;
    Status s = parser_.ParseInto(text, &e);
    EXPECT_TRUE(s.has_value()) << text << "\n -> " << (s ? "" : s.error().message);
    return e;
  }
  UsageEvent MustParse(const json& j) { return MustParse(j.dump()); }

  // Expects a rejection naming `field`, in `category`; returns the message.
  std::string MustReject(const std::string& text, const std::string& field,
                         std::string_view category) {
    UsageEvent e;
    Status s = parser_.ParseInto(text, &e);
    if (s) {
      ADD_FAILURE() << "accepted: " << text.substr(0, 300);
      return {};
    }
    EXPECT_EQ(s.error().field, field) << s.error().message;
    EXPECT_EQ(ReasonCategory(s.error()), category) << s.error().message;
    EXPECT_TRUE(s.error().message.starts_with(field + ": ")) << s.error().message;
    ErrorCode want =
        category == "too_large" ? ErrorCode::kResourceExhausted : ErrorCode::kInvalidArgument;
    EXPECT_EQ(s.error().code, want) << s.error().message;
    return s.error().message;
  }
  std::string MustReject(const json& j, const std::string& field, std::string_view category) {
    return MustReject(j.dump(), field, category);
  }
  std::string MustReject(const char* text, const std::string& field, std::string_view category) {
    return MustReject(std::string(text), field, category);
  }

  EventParser parser_;
};

}  // namespace tally::event::testing
