#include "http/requests_share.h"

#include <gtest/gtest.h>

namespace tally::http {
namespace {

query::RequestsShare Sample() {
  query::RequestsShare s;
  s.requests = 12;
  s.agents = 3;
  s.agent_users = 7;
  s.user_ids = {"u1", "u\"2"};
  query::RequestsShare::User a;
  a.id = "u1";
  a.requests = 5;
  a.tokens = 100;
  a.cost_nanos = -3;
  a.email = "a@example.com";
  a.email_time_ms = 1700000000123;
  a.email_scope = std::string("\x05org_1ws\x00\xff", 10);  // binary, as store scopes are
  s.users.push_back(a);
  query::RequestsShare::User b;
  b.id = "u2";  // no email
  s.users.push_back(b);
  s.top_agents.push_back({"Alpha", "ws-1", "ag-1", 9});
  s.projects.push_back({"org_1", "p1", {"u1", "u2"}});
  s.projects.push_back({"org_1", "p2", {}});
  s.days.push_back({20500, 4, 1});
  return s;
}

TEST(RequestsShareTest, RoundTrips) {
  const query::RequestsShare s = Sample();
  auto back = ParseRequestsShare(RenderRequestsShare(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->requests, 12u);
  EXPECT_EQ(back->agents, 3u);
  EXPECT_EQ(back->agent_users, 7u);
  EXPECT_EQ(back->user_ids, s.user_ids);
  ASSERT_EQ(back->users.size(), 2u);
  EXPECT_EQ(back->users[0].id, "u1");
  EXPECT_EQ(back->users[0].requests, 5u);
  EXPECT_EQ(back->users[0].tokens, 100u);
  EXPECT_EQ(back->users[0].cost_nanos, -3);
  EXPECT_EQ(back->users[0].email, "a@example.com");
  EXPECT_EQ(back->users[0].email_time_ms, 1700000000123);
  EXPECT_EQ(back->users[0].email_scope, s.users[0].email_scope);
  EXPECT_FALSE(back->users[1].email.has_value());
  ASSERT_EQ(back->top_agents.size(), 1u);
  EXPECT_EQ(back->top_agents[0].name, "Alpha");
  EXPECT_EQ(back->top_agents[0].workspace, "ws-1");
  EXPECT_EQ(back->top_agents[0].id, "ag-1");
  EXPECT_EQ(back->top_agents[0].value, 9u);
  ASSERT_EQ(back->projects.size(), 2u);
  EXPECT_EQ(back->projects[0].users, (std::vector<std::string>{"u1", "u2"}));
  EXPECT_TRUE(back->projects[1].users.empty());
  ASSERT_EQ(back->days.size(), 1u);
  EXPECT_EQ(back->days[0].day, 20500);
  EXPECT_EQ(back->days[0].requests, 4u);
  EXPECT_EQ(back->days[0].errors, 1u);
  // The empty share too.
  auto empty = ParseRequestsShare(RenderRequestsShare({}));
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->users.empty());
}

TEST(RequestsShareTest, RefusesWhatItDoesNotWrite) {
  const std::string good = RenderRequestsShare(Sample());
  for (const std::string& bad :
       {std::string(""), std::string("[]"), std::string("{}"), good.substr(0, good.size() / 2),
        std::string(R"({"requests":-1,"agents":0,"agent_users":0,"user_ids":[],"users":[],)"
                    R"("top_agents":[],"projects":[],"days":[]})"),
        std::string(R"({"requests":0,"agents":0,"agent_users":0,"user_ids":[1],"users":[],)"
                    R"("top_agents":[],"projects":[],"days":[]})"),
        std::string(R"({"requests":0,"agents":0,"agent_users":0,"user_ids":[],"users":[{"id":"u",)"
                    R"("requests":1,"tokens":1,"cost_nanos":1,"email":"e"}],"top_agents":[],)"
                    R"("projects":[],"days":[]})"),
        std::string(R"({"requests":0,"agents":0,"agent_users":0,"user_ids":[],"users":[],)"
                    R"("top_agents":[],"projects":[],"days":[{"day":1e99,"requests":0,)"
                    R"("errors":0}]})")}) {
    auto r = ParseRequestsShare(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(RequestsShareTest, WorkspaceListsRoundTripAndRefuseEmptyItems) {
  const std::vector<std::string> ws = {"8360bf61-4604-4f22-99dc-2afa910fd8c7", "a,b c%", "é"};
  const std::string header = EncodeShareWorkspaces(ws);
  EXPECT_EQ(header.find(' '), std::string::npos);
  auto back = DecodeShareWorkspaces(header);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, ws);
  EXPECT_TRUE(DecodeShareWorkspaces("")->empty());
  EXPECT_FALSE(DecodeShareWorkspaces("a,,b"));
  EXPECT_FALSE(DecodeShareWorkspaces("a,"));
  EXPECT_FALSE(DecodeShareWorkspaces(",a"));
}

}  // namespace
}  // namespace tally::http
