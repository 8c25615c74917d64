// The HTTP server over real sockets, with the whole router of service.h and a fake backend.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "http/service.h"
#include "http/testing/http_client.h"

namespace tally::http {
namespace {

using nlohmann::json;
using testing::HttpClient;
using testing::HttpReply;

constexpr int64_t kNow = 1768472625123;  // 2026-01-15T10:23:45.123Z

const json kUnauthenticated = json::parse(R"({"message":"Unauthenticated."})");
const json kForbidden = json::parse(R"({"message":"This action is unauthorized."})");

std::string KeysToml() {
  auto entry = [](const std::string& name, const std::string& token, const std::string& rest) {
    return "[[keys]]\nname = \"" + name + "\"\nsha256 = \"" + Sha256Hex(token) + "\"\n" + rest +
           "\n";
  };
  return entry("owner-a", "tok-a", R"(workspaces = { "ws-a" = "owner" })") +
         entry("member-a", "tok-member", R"(workspaces = { "ws-a" = "member" })") +
         entry("owner-b", "tok-b", R"(workspaces = { "ws-b" = "owner" })") +
         entry("admin", "tok-admin", "admin = true");
}

// What a raw TCP client saw: every byte the server sent, and whether it closed the connection
// (end of stream) within the timeout.
struct RawExchange {
  std::string received;
  bool closed = false;
};

// Connects to 127.0.0.1:port, writes `bytes` as they are, then reads until the server closes the
// connection or `timeout` passes without data.
RawExchange SendRawBytes(uint16_t port, std::string_view bytes,
                         std::chrono::seconds timeout = std::chrono::seconds(5)) {
  RawExchange out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  timeval tv{};
  tv.tv_sec = timeout.count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return out;
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      out.closed = true;
      break;
    }
    if (n < 0) break;  // timeout or reset
    out.received.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// One response as read from raw bytes: status, headers (names lowercased), and the bytes after
// the header block (the body, with a Content-Length framing, and anything after it).
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string rest;
};

// The status lines in `bytes`: one per response (bodies here are JSON, and a response may
// follow the previous body without a line break).
int CountStatusLines(const std::string& bytes) {
  int n = 0;
  for (size_t pos = bytes.find("HTTP/1.1 "); pos != std::string::npos;
       pos = bytes.find("HTTP/1.1 ", pos + 1)) {
    if (pos + 12 <= bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[pos + 9]))) ++n;
  }
  return n;
}

RawResponse ParseRawResponse(const std::string& bytes) {
  RawResponse r;
  const size_t end = bytes.find("\r\n\r\n");
  if (bytes.size() < 12 || end == std::string::npos) return r;
  r.status = std::stoi(bytes.substr(9, 3));
  size_t line = bytes.find("\r\n") + 2;
  while (line < end) {
    size_t eol = bytes.find("\r\n", line);
    std::string h = bytes.substr(line, eol - line);
    size_t colon = h.find(':');
    if (colon != std::string::npos) {
      std::string name = h.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < h.size() && h[v] == ' ') ++v;
      r.headers[name] = h.substr(v);
    }
    line = eol + 2;
  }
  r.rest = bytes.substr(end + 4);
  return r;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = KeyStore::LoadString(KeysToml());
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    ServiceDeps deps;
    deps.keys = std::make_shared<const KeyStore>(std::move(*keys));
    deps.metrics = &registry_;
    deps.clock = &clock_;
    deps.workspace_metrics.run =
        [this](const query::WorkspaceMetricsRequest& r) -> Result<query::WorkspaceMetricsResult> {
      calls_.fetch_add(1);
      query::WorkspaceMetricsResult res;
      res.total = r.workspace_id == "ws-a" ? total_a_.load() : 5;
      res.from = 20439;  // 2025-12-17
      res.to = 20468;    // 2026-01-15
      if (r.group_by == query::GroupBy::kUser) {
        res.rows = {{"user-uuid-1", "John Doe", "", 150}, {"user-uuid-2", "Jane Smith", "", 120}};
      }
      return res;
    };
    deps.workspace_metrics.workspace_known = [](std::string_view ws) {
      return ws == "ws-a" || ws == "ws-b";
    };
    deps.ready = [this] {
      return ReadyState{ready_.load(), R"({"consumer":"caught_up","lag":0})"};
    };
    auto router = BuildRouter(std::move(deps));
    ASSERT_TRUE(router.has_value()) << router.error().message;
    ServerOptions options;
    options.port = 0;
    options.max_body_bytes = 64 << 10;
    options.max_header_bytes = 8 << 10;
    auto server = Server::Start(options, *router);
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
  }

  Result<HttpReply> Fetch(std::string_view method, std::string_view target,
                          std::string_view body = {}, const StringPairs& headers = {}) {
    return testing::Fetch("127.0.0.1", server_->port(), method, target, body, headers);
  }

  Result<HttpReply> Metrics(const std::string& token, const std::string& body,
                            std::string_view method = "POST") {
    StringPairs headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    return Fetch(method, "/api/v1/workspaces/metrics", body, headers);
  }

  MetricsRegistry registry_;
  Clock clock_ = Clock::Fixed(kNow);
  std::atomic<int> calls_{0};
  std::atomic<double> total_a_{47};
  std::atomic<bool> ready_{true};
  std::unique_ptr<Server> server_;
};

constexpr const char* kSeedBody = R"({
    "workspace_uuid": "ws-a",
    "entity": "agents", "metric": "executions", "aggregation": "count",
    "group_by": "user", "granularity": "daily",
    "filters": {"period": "30d", "user_id": 0},
    "order_by": "value", "order_dir": "desc", "limit": 10})";

TEST_F(ServerTest, ServiceEndpoints) {
  auto health = Fetch("GET", "/healthz");
  ASSERT_TRUE(health.has_value()) << health.error().message;
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->Header("content-type"), "application/json");
  EXPECT_EQ(json::parse(health->body), json::parse(R"({"status":"ok"})"));

  auto ready = Fetch("GET", "/readyz");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(json::parse(ready->body),
            json::parse(R"({"status":"ready","details":{"consumer":"caught_up","lag":0}})"));
  ready_ = false;
  auto not_ready = Fetch("GET", "/readyz");
  ASSERT_TRUE(not_ready.has_value());
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_EQ(json::parse(not_ready->body)["status"], "not_ready");

  auto metrics = Fetch("GET", "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->Header("content-type"), "text/plain; version=0.0.4");
  EXPECT_NE(metrics->body.find(
                R"(tally_http_requests_total{route="/healthz",method="GET",status="200"} 1)"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(
                R"(tally_http_requests_total{route="/readyz",method="GET",status="503"} 1)"),
            std::string::npos)
      << metrics->body;
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto client = HttpClient::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(client.has_value()) << client.error().message;
  const uint16_t local = client->local_port();
  for (int i = 0; i < 3; ++i) {
    auto reply = client->Send("GET", "/healthz");
    ASSERT_TRUE(reply.has_value()) << "request " << i << ": " << reply.error().message;
    EXPECT_EQ(reply->status, 200);
    EXPECT_TRUE(reply->keep_alive);
  }
  auto post = client->Send("POST", "/api/v1/workspaces/metrics", kSeedBody,
                           {{"Authorization", "Bearer tok-a"}});
  ASSERT_TRUE(post.has_value()) << post.error().message;
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(client->local_port(), local);
}

TEST_F(ServerTest, OversizedBodyIs413) {
  std::string big(200 << 10, ' ');
  big.front() = '{';
  big.back() = '}';
  auto client = HttpClient::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(client.has_value());
  auto reply =
      client->Send("POST", "/api/v1/workspaces/metrics", big, {{"Authorization", "Bearer tok-a"}});
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 413);
  EXPECT_FALSE(reply->keep_alive);
  EXPECT_EQ(json::parse(reply->body),
            json::parse(R"({"message":"The request body is larger than 65536 bytes."})"));
  // The server is still fine.
  auto health = Fetch("GET", "/healthz");
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
}

TEST_F(ServerTest, OversizedHeaderIs431) {
  auto reply = Fetch("GET", "/healthz", {}, {{"X-Big", std::string(10 << 10, 'x')}});
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 431);
  EXPECT_EQ(json::parse(reply->body)["message"], "The request headers are larger than 8192 bytes.");
}

TEST_F(ServerTest, MalformedRequestIs400) {
  auto client = HttpClient::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(client.has_value());
  auto reply = client->SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n");
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 400);
  EXPECT_EQ(json::parse(reply->body), json::parse(R"({"message":"Malformed HTTP request."})"));
}

TEST_F(ServerTest, UnknownRouteIs404AndWrongMethod405) {
  auto reply = Fetch("GET", "/api/v1/nope?x=1");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 404);
  EXPECT_EQ(json::parse(reply->body), json::parse(R"({"message":"Not found."})"));
  auto wrong = Fetch("DELETE", "/api/v1/workspaces/metrics");
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->Header("allow"), "GET, HEAD, POST");
}

TEST_F(ServerTest, MetricsEndpointStatuses) {
  // 401: no token, unknown token (before validation).
  auto none = Metrics("", "{}");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body), kUnauthenticated);
  auto unknown = Metrics("tok-zzz", kSeedBody);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 401);
  EXPECT_EQ(json::parse(unknown->body), kUnauthenticated);

  // 422 (Laravel shape).
  auto invalid =
      Metrics("tok-a", R"({"workspace_uuid":"ws-a","metric":"executions","aggregation":"count"})");
  ASSERT_TRUE(invalid.has_value());
  EXPECT_EQ(invalid->status, 422);
  EXPECT_EQ(json::parse(invalid->body), json::parse(R"({"message":"The entity field is required.",
      "errors":{"entity":["The entity field is required."]}})"));

  // 403: another owner's workspace, and a workspace that does not exist, look the same.
  auto other = Metrics("tok-b", kSeedBody);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->status, 403);
  EXPECT_EQ(json::parse(other->body), kForbidden);
  auto member = Metrics("tok-member", kSeedBody);
  ASSERT_TRUE(member.has_value());
  EXPECT_EQ(member->status, 403);
  EXPECT_EQ(json::parse(member->body), kForbidden);

  // 404 for the admin on an unknown workspace.
  auto missing = Metrics("tok-admin", R"({"workspace_uuid":"8360bf61-0000","entity":"agents",
      "metric":"executions","aggregation":"count"})");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body), json::parse(R"({"error":"Workspace not found"})"));
  EXPECT_EQ(calls_.load(), 0);

  // 200 with the contract's shape, through GET with a body (as dashboards send it).
  auto ok = Metrics("tok-a", kSeedBody, "GET");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(json::parse(ok->body), json::parse(R"({
    "data": {"entity": "agents", "metric": "executions", "aggregation": "count",
             "group_by": "user", "granularity": "daily", "total": 47,
             "results": [{"user_id": "user-uuid-1", "user_name": "John Doe", "value": 150},
                         {"user_id": "user-uuid-2", "user_name": "Jane Smith", "value": 120}]},
    "meta": {"period": {"from": "2025-12-17", "to": "2026-01-15"},
             "cached_at": "2026-01-15T10:23:45.123Z", "cache_ttl": 300, "unit": null}})"));

  // api_key header works too.
  auto api_key = Fetch("POST", "/api/v1/workspaces/metrics", kSeedBody, {{"api_key", "tok-a"}});
  ASSERT_TRUE(api_key.has_value());
  EXPECT_EQ(api_key->status, 200);
}

TEST_F(ServerTest, CacheHitKeepsCachedAtAndNeverCrossesKeysOrWorkspaces) {
  auto first = Metrics("tok-a", kSeedBody);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->status, 200);
  clock_ = Clock::Fixed(kNow + 60'000);
  total_a_ = 1000;
  auto second = Metrics("tok-a", kSeedBody);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body, first->body);
  EXPECT_EQ(json::parse(second->body)["meta"]["cached_at"], "2026-01-15T10:23:45.123Z");
  EXPECT_EQ(calls_.load(), 1);

  // Another key asking for ws-a's cached entry is refused, not served from the cache.
  auto other = Metrics("tok-b", kSeedBody);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->status, 403);
  // ws-b's owner gets ws-b's data, computed now.
  std::string ws_b = kSeedBody;
  ws_b.replace(ws_b.find("ws-a"), 4, "ws-b");
  auto b = Metrics("tok-b", ws_b);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->status, 200);
  json bj = json::parse(b->body);
  EXPECT_EQ(bj["data"]["total"], 5);
  EXPECT_EQ(bj["meta"]["cached_at"], "2026-01-15T10:24:45.123Z");
  EXPECT_EQ(calls_.load(), 2);
}

TEST_F(ServerTest, QueryParametersEqualBody) {
  auto body_form = Metrics("tok-a", kSeedBody);
  ASSERT_TRUE(body_form.has_value());
  ASSERT_EQ(body_form->status, 200);
  auto query_form = Fetch("GET",
                          "/api/v1/workspaces/metrics?workspace_uuid=ws-a&entity=agents"
                          "&metric=executions&aggregation=count&group_by=user&granularity=daily"
                          "&filters%5Bperiod%5D=30d&filters[user_id]=0&order_by=value"
                          "&order_dir=desc&limit=10",
                          {}, {{"Authorization", "Bearer tok-a"}});
  ASSERT_TRUE(query_form.has_value());
  EXPECT_EQ(query_form->status, 200);
  EXPECT_EQ(query_form->body, body_form->body);
  EXPECT_EQ(calls_.load(), 1);  // same canonical request: served from the cache
  auto alias = Fetch("GET",
                     "/api/v1/workspaces/metrics?workspace_uuid=ws-a&entity=agents"
                     "&metric=executions&aggregation=count&group_by=user&granularity=daily"
                     "&period=30d&user_id=0&order_by=value&order_dir=desc&limit=10",
                     {}, {{"Authorization", "Bearer tok-a"}});
  ASSERT_TRUE(alias.has_value());
  EXPECT_EQ(alias->body, body_form->body);
}

TEST_F(ServerTest, MetricsShowRequestCounters) {
  ASSERT_TRUE(Metrics("tok-a", kSeedBody).has_value());
  ASSERT_TRUE(Metrics("tok-a", kSeedBody).has_value());
  ASSERT_TRUE(Metrics("", kSeedBody).has_value());
  ASSERT_TRUE(Fetch("GET", "/x/y/z").has_value());
  auto m = Fetch("GET", "/metrics");
  ASSERT_TRUE(m.has_value());
  const std::string& text = m->body;
  EXPECT_NE(
      text.find(
          R"(tally_http_requests_total{route="/api/v1/workspaces/metrics",method="POST",status="200"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(tally_http_requests_total{route="/api/v1/workspaces/metrics",method="POST",status="401"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(tally_http_requests_total{route="unmatched",method="GET",status="404"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(tally_http_request_duration_seconds_count{route="/api/v1/workspaces/metrics"} 3)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(tally_http_metrics_cache_total{result="hit"} 1)"), std::string::npos)
      << text;
}

// A body framed by a Transfer-Encoding the server does not treat as chunked, next to
// Content-Length: 0, must not let the bytes after the header be served as a second request.
TEST_F(ServerTest, NonChunkedTransferEncodingIs400AndCloses) {
  // A valid request: served, it would reach the backend.
  const std::string smuggled =
      "GET /api/v1/workspaces/metrics?workspace_uuid=ws-a&entity=agents&metric=executions"
      "&aggregation=count HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\n"
      "Connection: close\r\n\r\n";
  const std::vector<std::string> framings = {
      "Transfer-Encoding: xchunked\r\nContent-Length: 0\r\n",
      "Transfer-Encoding: identity\r\nContent-Length: 0\r\n",
      "Transfer-Encoding: identity\r\n",
      "Transfer-Encoding: xchunked\r\n",
      "Transfer-Encoding: gzip, chunked\r\n",
      "Transfer-Encoding: chunked, identity\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
      "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
  };
  for (const std::string& framing : framings) {
    SCOPED_TRACE(framing);
    const std::string first = "POST /healthz HTTP/1.1\r\nHost: x\r\n" + framing + "\r\n";
    RawExchange ex = SendRawBytes(server_->port(), first + smuggled);
    EXPECT_EQ(CountStatusLines(ex.received), 1) << ex.received;
    EXPECT_TRUE(ex.closed) << ex.received;
    RawResponse r = ParseRawResponse(ex.received);
    EXPECT_EQ(r.status, 400) << ex.received;
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(json::parse(r.rest, nullptr, false).contains("message")) << r.rest;
    EXPECT_EQ(calls_.load(), 0);  // the smuggled request never reached a handler
  }
  // HTTP/1.0 has no chunked coding at all.
  RawExchange old = SendRawBytes(
      server_->port(),
      "POST /healthz HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(ParseRawResponse(old.received).status, 400) << old.received;
  EXPECT_TRUE(old.closed);
}

TEST_F(ServerTest, ChunkedBodyIsStillAccepted) {
  const std::string body = kSeedBody;
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  RawExchange ex = SendRawBytes(
      server_->port(),
      "POST /api/v1/workspaces/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
      "\r\n" +
          std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  RawResponse r = ParseRawResponse(ex.received);
  EXPECT_EQ(r.status, 200) << ex.received;
  EXPECT_EQ(json::parse(r.rest)["data"]["total"], 47);
}

// HEAD answers like GET: same status and headers, Content-Length of the GET body, no body.
TEST_F(ServerTest, HeadAnswersLikeGetWithoutBody) {
  const std::string metrics_target =
      "/api/v1/workspaces/metrics?workspace_uuid=ws-a&entity=agents&metric=executions"
      "&aggregation=count&group_by=user&period=30d";
  struct Case {
    std::string target;
    std::string token;
    int status;
  };
  const std::vector<Case> cases = {
      {"/healthz", "", 200},          {"/readyz", "", 200},           {metrics_target, "", 401},
      {metrics_target, "tok-b", 403}, {metrics_target, "tok-a", 200}, {"/api/v1/nope", "", 404},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target + " " + c.token);
    std::string auth = c.token.empty() ? "" : "Authorization: Bearer " + c.token + "\r\n";
    RawExchange get = SendRawBytes(server_->port(), "GET " + c.target + " HTTP/1.1\r\nHost: x\r\n" +
                                                        auth + "Connection: close\r\n\r\n");
    RawExchange head =
        SendRawBytes(server_->port(), "HEAD " + c.target + " HTTP/1.1\r\nHost: x\r\n" + auth +
                                          "Connection: close\r\n\r\n");
    RawResponse g = ParseRawResponse(get.received);
    RawResponse h = ParseRawResponse(head.received);
    EXPECT_EQ(g.status, c.status) << get.received;
    EXPECT_EQ(h.status, c.status) << head.received;
    EXPECT_TRUE(head.closed);
    EXPECT_EQ(h.rest, "") << "HEAD sent a body";
    EXPECT_EQ(h.headers["content-length"], std::to_string(g.rest.size()));
    EXPECT_EQ(h.headers["content-type"], g.headers["content-type"]);
    EXPECT_EQ(h.headers["www-authenticate"], g.headers["www-authenticate"]);
    EXPECT_EQ(h.headers.count("server-timing"), g.headers.count("server-timing"));
  }
  // /metrics changes between two calls; its HEAD still announces a non-empty body.
  RawExchange head = SendRawBytes(server_->port(),
                                  "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  RawResponse h = ParseRawResponse(head.received);
  EXPECT_EQ(h.status, 200);
  EXPECT_GT(std::stoul(h.headers["content-length"]), 0u);
  EXPECT_EQ(h.rest, "");

  // On a keep-alive connection the next request is read right after HEAD's headers.
  auto client = HttpClient::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(client.has_value());
  auto first = client->Send("HEAD", metrics_target, {}, {{"Authorization", "Bearer tok-a"}});
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->status, 200);
  EXPECT_TRUE(first->body.empty());
  auto second = client->Send("GET", "/healthz");
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(json::parse(second->body), json::parse(R"({"status":"ok"})"));

  // HEAD on a POST-only route is still 405.
  auto post_only = client->Send("HEAD", "/admin/v1/switch");
  ASSERT_TRUE(post_only.has_value());
  EXPECT_TRUE(post_only->status == 405 || post_only->status == 404) << post_only->status;
}

TEST_F(ServerTest, ExpectContinueIsAnswered) {
  auto client = HttpClient::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(client.has_value());
  const std::string body = kSeedBody;
  auto cont = client->SendRaw(
      "POST /api/v1/workspaces/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\n"
      "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  ASSERT_TRUE(cont.has_value()) << cont.error().message;
  EXPECT_EQ(cont->status, 100);
  auto reply = client->SendRaw(body);
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 200);
}

}  // namespace
}  // namespace tally::http
