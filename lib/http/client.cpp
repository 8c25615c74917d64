#include "http/client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <climits>
#include <utility>

#include "http/internal/beast_names.h"

namespace tally::http {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxBodyBytes = 64 << 20;

// Hosts the sockets of every client. All operations here are synchronous (nothing runs it), so
// one context serves every thread. Never destroyed: a client held by a static object can still
// close its socket during exit.
net::io_context& SharedIoContext() {
  static auto* const ioc = new net::io_context();
  return *ioc;
}

beast::error_code ErrnoCode(int err) { return {err, boost::system::system_category()}; }

// Waits until `fd` is ready for `events` or `deadline` passes (then net::error::timed_out).
// True when ready (an error or hang-up counts: the next operation reports it).
bool WaitFor(int fd, short events, SteadyClock::time_point deadline, beast::error_code& ec) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      ec = net::error::timed_out;
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) {
      ec = ErrnoCode(errno);
      return false;
    }
  }
}

// A non-blocking connect to `endpoint` on `socket` (opened here), bounded by `deadline`.
beast::error_code ConnectOne(tcp::socket& socket, const tcp::endpoint& endpoint,
                             SteadyClock::time_point deadline) {
  beast::error_code ec;
  socket.open(endpoint.protocol(), ec);
  if (ec) return ec;
  socket.non_blocking(true, ec);
  if (ec) return ec;
  const int fd = socket.native_handle();
  if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) == 0) return {};
  if (errno != EINPROGRESS && errno != EINTR) return ErrnoCode(errno);
  if (!WaitFor(fd, POLLOUT, deadline, ec)) return ec;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return ErrnoCode(errno);
  return err == 0 ? beast::error_code{} : ErrnoCode(err);
}

std::string HostPort(const std::string& host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool HasControlBytes(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// kInvalidArgument for what would break the request's framing (header injection).
Status ValidateRequest(std::string_view method, std::string_view target,
                       const StringPairs& headers) {
  if (method.empty() || method.find(' ') != std::string_view::npos || HasControlBytes(method)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid HTTP method", "method");
  }
  if (target.empty() || target.find(' ') != std::string_view::npos || HasControlBytes(target)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid HTTP request target", "target");
  }
  for (const auto& [k, v] : headers) {
    if (k.empty() || k.find(':') != std::string::npos || HasControlBytes(k) || HasControlBytes(v)) {
      return Fail(ErrorCode::kInvalidArgument, "invalid HTTP header '" + k + "'", "headers");
    }
  }
  return Ok();
}

}  // namespace

struct HttpClient::Impl {
  tcp::socket socket{SharedIoContext()};
  beast::flat_buffer buffer;
  std::string host;  // host:port, for the Host header and messages
  std::chrono::milliseconds timeout{10000};
  // The last exchange: bytes of the reply received, and whether it failed on a timeout.
  size_t reply_bytes = 0;
  bool timed_out = false;

  // Beast's SyncReadStream/SyncWriteStream over the non-blocking socket: each read or write
  // waits at most `timeout` for the socket to become ready.
  class Stream {
   public:
    explicit Stream(Impl* impl) : impl_(impl) {}

    template <class MutableBuffers>
    size_t read_some(const MutableBuffers& buffers, beast::error_code& ec) {
      for (;;) {
        const size_t n = impl_->socket.read_some(buffers, ec);
        impl_->reply_bytes += n;
        if (!Retry(ec, POLLIN)) return n;
      }
    }
    template <class ConstBuffers>
    size_t write_some(const ConstBuffers& buffers, beast::error_code& ec) {
      for (;;) {
        const size_t n = impl_->socket.write_some(buffers, ec);
        if (!Retry(ec, POLLOUT)) return n;
      }
    }
    // Declared for Beast's stream concept checks only; never called (they would throw).
    template <class MutableBuffers>
    size_t read_some(const MutableBuffers& buffers);
    template <class ConstBuffers>
    size_t write_some(const ConstBuffers& buffers);

   private:
    // After a would-block result, waits for the socket; false when `ec` is final.
    bool Retry(beast::error_code& ec, short events) {
      if (ec != net::error::would_block && ec != net::error::try_again) return false;
      ec = {};
      if (WaitFor(impl_->socket.native_handle(), events, SteadyClock::now() + impl_->timeout, ec)) {
        return true;
      }
      if (ec == net::error::timed_out) impl_->timed_out = true;
      return false;
    }
    Impl* impl_;
  };

  std::unexpected<Error> Broken(std::string_view what, const beast::error_code& ec) {
    std::string message = std::string(what) + " " + host + ": ";
    message +=
        timed_out ? "timed out after " + std::to_string(timeout.count()) + " ms" : ec.message();
    // The stream is out of step (or dead): no further request on it.
    beast::error_code ignored;
    socket.close(ignored);
    return Fail(ErrorCode::kUnavailable, std::move(message));
  }

  bool Usable() const { return socket.is_open(); }
  // Whether the connection can carry another request: open, nothing unread.
  bool Reusable() const { return socket.is_open() && buffer.size() == 0; }

  void BeginExchange() {
    reply_bytes = buffer.size();
    timed_out = false;
  }

  // `head`: the reply to a HEAD request (headers only, whatever its Content-Length says).
  Result<HttpReply> ReadReply(bool head) {
    beast::error_code ec;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.skip(head);
    Stream stream(this);
    bhttp::read(stream, buffer, parser, ec);
    if (ec) return Broken("read from", ec);
    auto& msg = parser.get();
    HttpReply reply;
    reply.status = static_cast<int>(msg.result_int());
    reply.keep_alive = msg.keep_alive();
    for (const auto& f : msg) {
      reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    reply.body = std::move(msg.body());
    return reply;
  }

  // Sends a request already validated by ValidateRequest and reads its reply.
  Result<HttpReply> Exchange(std::string_view method, std::string_view target,
                             std::string_view body, const StringPairs& headers) {
    BeginExchange();
    if (!Usable()) return Fail(ErrorCode::kUnavailable, "connection to " + host + " is closed");
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, host);
    bool has_content_type = false;
    for (const auto& [k, v] : headers) {
      if (beast::iequals(k, "content-type")) has_content_type = true;
      req.insert(k, v);
    }
    if (!body.empty() && !has_content_type) {
      req.set(bhttp::field::content_type, "application/json");
    }
    req.body().assign(body);
    req.prepare_payload();
    beast::error_code ec;
    Stream stream(this);
    bhttp::write(stream, req, ec);
    if (ec) return Broken("write to", ec);
    return ReadReply(method == "HEAD");
  }
};

std::string_view HttpReply::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return {};
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() {
  if (impl_ && impl_->socket.is_open()) {
    beast::error_code ec;
    impl_->socket.shutdown(tcp::socket::shutdown_both, ec);
    impl_->socket.close(ec);
  }
}

Result<HttpClient> HttpClient::Connect(const std::string& host, uint16_t port,
                                       std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->host = HostPort(host, port);
  impl->timeout = timeout;
  const auto deadline = SteadyClock::now() + timeout;
  beast::error_code ec;
  tcp::resolver resolver(SharedIoContext());
  auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
  if (ec) return Fail(ErrorCode::kUnavailable, "resolve " + host + ": " + ec.message());
  beast::error_code last = net::error::host_not_found;
  for (const auto& entry : results) {
    last = ConnectOne(impl->socket, entry.endpoint(), deadline);
    if (!last) {
      impl->socket.set_option(tcp::no_delay(true), ec);  // request/response: no Nagle delay
      return HttpClient(std::move(impl));
    }
    impl->socket.close(ec);
    if (last == net::error::timed_out) break;
  }
  std::string message = "connect to " + impl->host + ": ";
  message += last == net::error::timed_out
                 ? "timed out after " + std::to_string(timeout.count()) + " ms"
                 : last.message();
  return Fail(ErrorCode::kUnavailable, std::move(message));
}

Result<HttpReply> HttpClient::Send(std::string_view method, std::string_view target,
                                   std::string_view body, const StringPairs& headers) {
  if (!impl_) return Fail(ErrorCode::kUnavailable, "moved-from HttpClient");
  if (auto ok = ValidateRequest(method, target, headers); !ok) {
    return std::unexpected(ok.error());
  }
  return impl_->Exchange(method, target, body, headers);
}

Result<HttpReply> HttpClient::SendRaw(std::string_view bytes) {
  if (!impl_) return Fail(ErrorCode::kUnavailable, "moved-from HttpClient");
  impl_->BeginExchange();
  if (!impl_->Usable()) {
    return Fail(ErrorCode::kUnavailable, "connection to " + impl_->host + " is closed");
  }
  beast::error_code ec;
  Impl::Stream stream(impl_.get());
  net::write(stream, net::buffer(bytes.data(), bytes.size()), ec);
  if (ec) return impl_->Broken("write to", ec);
  return impl_->ReadReply(/*head=*/false);
}

uint16_t HttpClient::local_port() const {
  if (!impl_) return 0;
  beast::error_code ec;
  auto ep = impl_->socket.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

Result<HttpReply> Fetch(const std::string& host, uint16_t port, std::string_view method,
                        std::string_view target, std::string_view body,
                        const StringPairs& headers) {
  auto client = HttpClient::Connect(host, port);
  if (!client) return std::unexpected(client.error());
  return client->Send(method, target, body, headers);
}

// ---------------------------------------------------------------- ClientPool

ClientPool::ClientPool(ClientPoolOptions options) : options_(options) {}
ClientPool::~ClientPool() = default;

std::string ClientPool::Key(const std::string& host, uint16_t port) { return HostPort(host, port); }

std::optional<HttpClient> ClientPool::TakeIdle(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return std::nullopt;
  std::optional<HttpClient> client(std::move(it->second.back()));
  it->second.pop_back();
  return client;
}

void ClientPool::Release(const std::string& key, HttpClient client) {
  if (options_.max_idle_per_host == 0) return;  // closed here, outside the lock
  std::optional<HttpClient> evicted;            // closed after the lock is released
  std::lock_guard lock(mu_);
  auto& list = idle_[key];
  if (list.size() >= options_.max_idle_per_host) {
    evicted.emplace(std::move(list.front()));
    list.erase(list.begin());
  }
  list.push_back(std::move(client));
}

Result<HttpReply> ClientPool::Send(const std::string& host, uint16_t port, std::string_view method,
                                   std::string_view target, std::string_view body,
                                   const StringPairs& headers) {
  if (auto ok = ValidateRequest(method, target, headers); !ok) {
    return std::unexpected(ok.error());
  }
  const std::string key = Key(host, port);
  if (std::optional<HttpClient> pooled = TakeIdle(key)) {
    reuses_.fetch_add(1, std::memory_order_relaxed);
    Result<HttpReply> reply = pooled->impl_->Exchange(method, target, body, headers);
    if (reply) {
      if (reply->keep_alive && pooled->impl_->Reusable()) Release(key, std::move(*pooled));
      return reply;
    }
    // Only a connection that died while idle is retried: the server sent nothing back.
    if (pooled->impl_->timed_out || pooled->impl_->reply_bytes > 0) return reply;
  }
  Result<HttpClient> fresh = HttpClient::Connect(host, port, options_.timeout);
  if (!fresh) return std::unexpected(fresh.error());
  connects_.fetch_add(1, std::memory_order_relaxed);
  Result<HttpReply> reply = fresh->impl_->Exchange(method, target, body, headers);
  if (reply && reply->keep_alive && fresh->impl_->Reusable()) Release(key, std::move(*fresh));
  return reply;
}

}  // namespace tally::http
