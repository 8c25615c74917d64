// HttpClient and ClientPool over real sockets, against tally::http::Server and raw TCP servers.
#include "http/client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"

namespace tally::http {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// A tally::http::Server on 127.0.0.1 answering GET and POST /echo with the method, the body and
// the X-Tag header, and counting the requests it handled.
class EchoServer {
 public:
  // `port` 0 = ephemeral.
  static std::unique_ptr<EchoServer> Start(uint16_t port = 0) {
    auto echo = std::make_unique<EchoServer>();
    auto router = std::make_shared<Router>();
    std::atomic<int>* handled = &echo->handled_;
    auto handler = [handled](const Request& r) {
      handled->fetch_add(1);
      return JsonResponse(200, "{\"method\":\"" + r.method + "\",\"body\":\"" + r.body +
                                   "\",\"tag\":\"" + std::string(r.Header("X-Tag")) + "\"}");
    };
    router->Add("GET", "/echo", handler);
    router->Add("POST", "/echo", handler);
    ServerOptions options;
    options.port = port;
    auto server = Server::Start(options, router);
    if (!server) {
      ADD_FAILURE() << server.error().message;
      return nullptr;
    }
    echo->server_ = std::move(*server);
    return echo;
  }

  uint16_t port() const { return server_->port(); }
  int handled() const { return handled_.load(); }
  void Stop() { server_->Stop(); }

 private:
  std::atomic<int> handled_{0};
  std::unique_ptr<Server> server_;
};

// A listening TCP socket on 127.0.0.1 (ephemeral port) whose connections `script` handles on
// a thread of its own: script(listen_fd).
class RawServer {
 public:
  explicit RawServer(std::function<void(int)> script, int backlog = 8) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, backlog) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, script = std::move(script)] { script(fd_); });
  }
  ~RawServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Accepts one connection (reads on it give up after 10 s); -1 on failure.
int AcceptOne(int listen_fd) {
  int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = 10;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads one request without a body (up to the blank line). False on end of stream or error.
bool ReadHead(int fd) {
  std::string got;
  char c;
  while (got.size() < 4 || got.compare(got.size() - 4, 4, "\r\n\r\n") != 0) {
    if (::recv(fd, &c, 1, 0) != 1) return false;
    got.push_back(c);
  }
  return true;
}

void WriteOk(int fd, std::string_view body) {
  const std::string reply =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
}

// Reads until the peer closes (or 10 s pass without data).
void DrainUntilClosed(int fd) {
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

// A port nothing listens on (bound once, then released).
uint16_t ClosedPort() {
  RawServer gone([](int) {});
  return gone.port();
}

TEST(HttpClient, ConnectSendAndKeepAlive) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  auto client = HttpClient::Connect("127.0.0.1", server->port());
  ASSERT_TRUE(client.has_value()) << client.error().message;
  const uint16_t local = client->local_port();
  EXPECT_NE(local, 0);
  auto post = client->Send("POST", "/echo", "x", {{"X-Tag", "t1"}});
  ASSERT_TRUE(post.has_value()) << post.error().message;
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, R"({"method":"POST","body":"x","tag":"t1"})");
  EXPECT_TRUE(post->keep_alive);
  EXPECT_EQ(post->Header("content-type"), "application/json");
  auto get = client->Send("GET", "/echo");
  ASSERT_TRUE(get.has_value()) << get.error().message;
  EXPECT_EQ(client->local_port(), local);  // same connection
  auto fetched = Fetch("127.0.0.1", server->port(), "GET", "/echo", {}, {{"X-Tag", "f"}});
  ASSERT_TRUE(fetched.has_value()) << fetched.error().message;
  EXPECT_EQ(fetched->body, R"({"method":"GET","body":"","tag":"f"})");
}

TEST(HttpClient, RejectsHeaderInjection) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  auto client = HttpClient::Connect("127.0.0.1", server->port());
  ASSERT_TRUE(client.has_value());
  auto bad = client->Send("GET", "/echo", {}, {{"X-Tag", "a\r\nX-Evil: 1"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(client->Send("GET", "/echo HTTP/1.0\r\n").has_value());
  EXPECT_TRUE(client->Send("GET", "/echo").has_value());  // nothing was sent
  EXPECT_EQ(server->handled(), 1);
}

TEST(HttpClient, ConnectToClosedPortFailsFast) {
  const uint16_t port = ClosedPort();
  const auto start = SteadyClock::now();
  auto client = HttpClient::Connect("127.0.0.1", port, milliseconds(500));
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, milliseconds(500));
}

TEST(HttpClient, ConnectIsBoundedByTheTimeout) {
  // Nothing accepts and the backlog is full after one connection: the kernel drops the next
  // SYNs, so the next connect would hang (or be refused, with tcp_abort_on_overflow).
  RawServer full([](int) {}, /*backlog=*/0);
  auto queued = HttpClient::Connect("127.0.0.1", full.port(), milliseconds(1000));
  ASSERT_TRUE(queued.has_value()) << queued.error().message;
  const auto start = SteadyClock::now();
  auto client = HttpClient::Connect("127.0.0.1", full.port(), milliseconds(300));
  const auto took = SteadyClock::now() - start;
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(took, milliseconds(1300));
}

TEST(ClientPool, SecondRequestReusesTheConnection) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  ClientPool pool(ClientPoolOptions{});
  auto first = pool.Send("127.0.0.1", server->port(), "POST", "/echo", "a", {{"X-Tag", "1"}});
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto second = pool.Send("127.0.0.1", server->port(), "POST", "/echo", "a", {{"X-Tag", "1"}});
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(pool.connects(), 1u);
  EXPECT_EQ(pool.reuses(), 1u);
  // The server saw the same request twice.
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(first->body, R"({"method":"POST","body":"a","tag":"1"})");
  EXPECT_EQ(second->body, first->body);
  EXPECT_EQ(server->handled(), 2);
}

TEST(ClientPool, RestartedServerIsRetriedOnAFreshConnection) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  const uint16_t port = server->port();
  ClientPool pool(ClientPoolOptions{});
  ASSERT_TRUE(pool.Send("127.0.0.1", port, "GET", "/echo", {}, {}).has_value());
  server->Stop();  // closes the pooled connection
  server.reset();
  server = EchoServer::Start(port);
  ASSERT_TRUE(server);
  auto reply = pool.Send("127.0.0.1", port, "GET", "/echo", {}, {});
  ASSERT_TRUE(reply.has_value()) << reply.error().message;
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(pool.reuses(), 1u);    // the dead pooled connection was tried
  EXPECT_EQ(pool.connects(), 2u);  // then a fresh one
  EXPECT_EQ(server->handled(), 1);
}

TEST(ClientPool, ConnectionClosedAfterReadingTheRequestIsRetried) {
  // First connection: one answered request, then the next one is read and the connection
  // closed without a reply (the race of a server closing an idle connection). Second
  // connection: answered.
  RawServer raw([](int listen_fd) {
    int first = AcceptOne(listen_fd);
    if (ReadHead(first)) WriteOk(first, R"({"n":1})");
    ReadHead(first);
    ::close(first);
    int second = AcceptOne(listen_fd);
    if (ReadHead(second)) WriteOk(second, R"({"n":2})");
    DrainUntilClosed(second);
    ::close(second);
  });
  {
    ClientPool pool(ClientPoolOptions{});
    auto one = pool.Send("127.0.0.1", raw.port(), "GET", "/x", {}, {});
    ASSERT_TRUE(one.has_value()) << one.error().message;
    auto two = pool.Send("127.0.0.1", raw.port(), "GET", "/x", {}, {});
    ASSERT_TRUE(two.has_value()) << two.error().message;
    EXPECT_EQ(two->body, R"({"n":2})");
    EXPECT_EQ(pool.reuses(), 1u);
    EXPECT_EQ(pool.connects(), 2u);
  }  // closes the second connection: the raw server's thread ends
}

TEST(ClientPool, ConcurrentSendsFromFourThreads) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  ClientPool pool(ClientPoolOptions{});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string tag = std::to_string(t) + "-" + std::to_string(i);
        auto reply = pool.Send("127.0.0.1", server->port(), "GET", "/echo", {}, {{"X-Tag", tag}});
        if (reply && reply->status == 200 &&
            reply->body == R"({"method":"GET","body":"","tag":")" + tag + "\"}") {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(server->handled(), kThreads * kPerThread);
  // A connection is opened only while every other one is busy: at most one per thread.
  EXPECT_LE(pool.connects(), static_cast<size_t>(kThreads));
  EXPECT_EQ(pool.connects() + pool.reuses(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(ClientPool, ConnectToClosedPortFailsWithinTheTimeout) {
  const uint16_t port = ClosedPort();
  ClientPoolOptions options;
  options.timeout = milliseconds(500);
  ClientPool pool(options);
  const auto start = SteadyClock::now();
  auto reply = pool.Send("127.0.0.1", port, "GET", "/x", {}, {});
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, options.timeout);
  EXPECT_EQ(pool.connects(), 0u);
}

TEST(ClientPool, ServerThatNeverAnswersTimesOut) {
  RawServer silent([](int listen_fd) {
    int fd = AcceptOne(listen_fd);
    DrainUntilClosed(fd);  // reads, never writes
    ::close(fd);
  });
  ClientPoolOptions options;
  options.timeout = milliseconds(400);
  ClientPool pool(options);
  const auto start = SteadyClock::now();
  auto reply = pool.Send("127.0.0.1", silent.port(), "POST", "/x", "{}", {});
  const auto took = SteadyClock::now() - start;
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(reply.error().message.find("timed out"), std::string::npos) << reply.error().message;
  EXPECT_GE(took, milliseconds(400));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(ClientPool, TimeoutOnAPooledConnectionIsNotRetried) {
  // One answered request, then the next one is read and never answered.
  RawServer raw([](int listen_fd) {
    int fd = AcceptOne(listen_fd);
    if (ReadHead(fd)) WriteOk(fd, "{}");
    DrainUntilClosed(fd);
    ::close(fd);
  });
  ClientPoolOptions options;
  options.timeout = milliseconds(300);
  ClientPool pool(options);
  ASSERT_TRUE(pool.Send("127.0.0.1", raw.port(), "GET", "/x", {}, {}).has_value());
  auto reply = pool.Send("127.0.0.1", raw.port(), "GET", "/x", {}, {});
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(pool.connects(), 1u);
  EXPECT_EQ(pool.reuses(), 1u);
}

TEST(ClientPool, IdleConnectionsAreBoundedPerHost) {
  auto server = EchoServer::Start();
  ASSERT_TRUE(server);
  ClientPoolOptions options;
  options.max_idle_per_host = 0;  // keep nothing
  ClientPool pool(options);
  ASSERT_TRUE(pool.Send("127.0.0.1", server->port(), "GET", "/echo", {}, {}).has_value());
  ASSERT_TRUE(pool.Send("127.0.0.1", server->port(), "GET", "/echo", {}, {}).has_value());
  EXPECT_EQ(pool.connects(), 2u);
  EXPECT_EQ(pool.reuses(), 0u);
}

}  // namespace
}  // namespace tally::http
