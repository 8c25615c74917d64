#include "http/router.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tally::http {
namespace {

Request Make(std::string method, std::string target) {
  Request r;
  r.method = std::move(method);
  SplitTarget(target, &r);
  return r;
}

TEST(ParseQueryString, DecodesAndKeepsRepeats) {
  StringPairs q = ParseQueryString("a=1&b=x%20y+z&a=2&&flag&filters%5Bperiod%5D=7d&e=&bad=%zz%4");
  StringPairs want = {
      {"a", "1"}, {"b", "x y z"},  {"a", "2"}, {"flag", ""}, {"filters[period]", "7d"},
      {"e", ""},  {"bad", "%zz%4"}};
  EXPECT_EQ(q, want);
  EXPECT_TRUE(ParseQueryString("").empty());
  EXPECT_EQ(PercentDecode("a+b%2B", false), "a+b+");
  EXPECT_EQ(PercentDecode("a+b%2B", true), "a b+");
}

TEST(SplitTarget, PathAndQuery) {
  Request r = Make("GET", "/api/v1/x?y=1&y=2");
  EXPECT_EQ(r.path, "/api/v1/x");
  EXPECT_EQ(r.query, (StringPairs{{"y", "1"}, {"y", "2"}}));
  EXPECT_EQ(*r.FindQuery("y"), "2");  // the last one
  EXPECT_EQ(r.FindQuery("z"), nullptr);
}

TEST(Request, HeaderLookupIsCaseInsensitive) {
  Request r;
  r.headers = {{"Content-Type", "application/json"}, {"X-A", "1"}, {"x-a", "2"}};
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("X-a"), "1");
  EXPECT_EQ(r.Header("missing"), "");
  EXPECT_EQ(r.FindHeader("missing"), nullptr);
}

// The Server-Timing header of a handled response, or "" when it has none.
std::string ServerTiming(const Response& r) {
  for (const auto& [name, value] : r.headers) {
    if (name == "Server-Timing") return value;
  }
  return "";
}

TEST(Router, AddsServerTimingOnlyWhenEnabled) {
  auto ok = [](const Request&) { return JsonResponse(200, "1"); };
  Router plain;
  plain.Add("GET", "/x", ok);
  Request a = Make("GET", "/x");
  EXPECT_EQ(ServerTiming(plain.Handle(a)), "");

  Router timed(nullptr, RouterOptions{.server_timing = true});
  timed.Add("GET", "/x", ok);
  Request b = Make("GET", "/x");
  EXPECT_EQ(ServerTiming(timed.Handle(b)).rfind("app;dur=", 0), 0u);
  Request missing = Make("GET", "/nowhere");  // no handler ran: no timing
  EXPECT_EQ(ServerTiming(timed.Handle(missing)), "");
}

TEST(Router, RoutesWithPathParameters) {
  Router router;
  router.Add("GET", "/api/v1/monitoring/{workspace_id}/superagents", [](const Request& r) {
    return JsonResponse(200, "\"" + std::string(r.PathParam("workspace_id")) + "\"");
  });
  router.Add("GET", "/healthz", [](const Request&) { return JsonResponse(200, "1"); });
  Request r = Make("GET", "/api/v1/monitoring/ws%201/superagents?x=1");
  Response res = router.Handle(r);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "\"ws 1\"");
  Request h = Make("GET", "/healthz/");  // a trailing slash is tolerated
  EXPECT_EQ(router.Handle(h).status, 200);

  for (const char* path :
       {"/api/v1/monitoring//superagents", "/api/v1/monitoring/a/b/superagents",
        "/api/v1/monitoring/a", "/", "/healthzz", "/api/v1/monitoring/a/superagents/x"}) {
    Request miss = Make("GET", path);
    Response nf = router.Handle(miss);
    EXPECT_EQ(nf.status, 404) << path;
    EXPECT_EQ(nlohmann::json::parse(nf.body), nlohmann::json::parse(R"({"message":"Not found."})"));
  }
}

TEST(Router, WrongMethodIs405WithAllow) {
  Router router;
  router.Add("GET", "/m", [](const Request&) { return JsonResponse(200, "1"); });
  router.Add("POST", "/m", [](const Request&) { return JsonResponse(200, "2"); });
  Request r = Make("DELETE", "/m");
  Response res = router.Handle(r);
  EXPECT_EQ(res.status, 405);
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0], (std::pair<std::string, std::string>("Allow", "GET, HEAD, POST")));
  Request p = Make("POST", "/m");
  EXPECT_EQ(router.Handle(p).body, "2");
}

TEST(Router, HeadRunsTheGetRoute) {
  MetricsRegistry registry;
  Router router(&registry);
  router.Add("GET", "/w/{id}", [](const Request& r) {
    if (r.Header("Authorization").empty()) return JsonResponse(401, R"({"message":"no"})");
    Response res = JsonResponse(200, "\"" + std::string(r.PathParam("id")) + "\"");
    res.headers.emplace_back("X-Extra", "1");
    return res;
  });
  router.Add("POST", "/p", [](const Request&) { return JsonResponse(200, "1"); });
  router.Add("GET", "/h", [](const Request&) { return JsonResponse(200, "\"get\""); });
  router.Add("HEAD", "/h", [](const Request&) { return JsonResponse(204, ""); });

  Request get = Make("GET", "/w/a%20b");
  get.headers = {{"Authorization", "Bearer x"}};
  Request head = Make("HEAD", "/w/a%20b");
  head.headers = get.headers;
  Response g = router.Handle(get);
  Response h = router.Handle(head);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, g.body);  // the server sends its length, not the body
  EXPECT_EQ(h.body, "\"a b\"");
  EXPECT_EQ(h.content_type, g.content_type);
  ASSERT_EQ(h.headers.size(), 1u);  // X-Extra (no Server-Timing by default)
  EXPECT_EQ(h.headers[0], g.headers[0]);
  EXPECT_EQ(head.PathParam("id"), "a b");

  Request anonymous = Make("HEAD", "/w/x");
  EXPECT_EQ(router.Handle(anonymous).status, 401);

  Request head_post = Make("HEAD", "/p");  // no GET route: still 405
  Response r = router.Handle(head_post);
  EXPECT_EQ(r.status, 405);
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0].second, "POST");

  Request explicit_head = Make("HEAD", "/h");  // a HEAD route of its own wins
  EXPECT_EQ(router.Handle(explicit_head).status, 204);

  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find(R"(tally_http_requests_total{route="/w/{id}",method="HEAD",status="200"} 1)"),
            std::string::npos)
      << text;
}

TEST(Router, HandlerExceptionBecomes500) {
  Router router;
  router.Add("GET", "/boom", [](const Request&) -> Response { throw std::runtime_error("x"); });
  Request r = Make("GET", "/boom");
  Response res = router.Handle(r);
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(nlohmann::json::parse(res.body),
            nlohmann::json::parse(R"({"message":"Internal server error."})"));
}

TEST(Router, RecordsMetricsByPattern) {
  MetricsRegistry registry;
  Router router(&registry);
  router.Add("GET", "/w/{id}", [](const Request&) { return JsonResponse(200, "1"); });
  for (const char* t : {"/w/a", "/w/b", "/w/c?q=1"}) {
    Request r = Make("GET", t);
    router.Handle(r);
  }
  Request nf = Make("GET", "/nope");
  router.Handle(nf);
  Request weird = Make("BREW", "/nope");
  router.Handle(weird);
  Request wrong = Make("POST", "/w/a");
  router.Handle(wrong);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find(R"(tally_http_requests_total{route="/w/{id}",method="GET",status="200"} 3)"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(tally_http_requests_total{route="unmatched",method="GET",status="404"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(tally_http_requests_total{route="unmatched",method="OTHER",status="404"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(tally_http_requests_total{route="/w/{id}",method="POST",status="405"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(tally_http_request_duration_seconds_count{route="/w/{id}"} 4)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("/w/a"), std::string::npos);  // raw paths never become labels
}

}  // namespace
}  // namespace tally::http
