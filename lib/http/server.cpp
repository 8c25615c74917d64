#include "http/server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/thread.h"
#include "http/error_mapping.h"
#include "http/internal/beast_names.h"

namespace tally::http {
namespace {

// How long a connection is drained after an error response that closes it, so the client reads
// the response instead of a TCP reset caused by its unread request bytes.
constexpr std::chrono::seconds kLingerTimeout{2};

// Why the framing of a request's body cannot be trusted, or nullptr. Only "Transfer-Encoding:
// chunked" (one field, exactly that coding) is accepted, never together with Content-Length
// nor in HTTP/1.0 (RFC 9112 section 6): anything else could be read differently by a proxy in
// front of tally, which would then see the rest of the body as another request (smuggling).
template <class Header>
const char* UnsafeFraming(const Header& header) {
  int transfer_encodings = 0;
  bool chunked = false;
  for (const auto& field : header) {
    if (field.name() != bhttp::field::transfer_encoding) continue;
    ++transfer_encodings;
    beast::string_view v = field.value();
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    chunked = beast::iequals(v, "chunked");
  }
  if (transfer_encodings == 0) return nullptr;
  if (header.find(bhttp::field::content_length) != header.end()) {
    return "A request must not have both Transfer-Encoding and Content-Length.";
  }
  if (transfer_encodings > 1 || !chunked || header.version() < 11) {
    return "Unsupported Transfer-Encoding: only a single \"chunked\" coding is accepted.";
  }
  return nullptr;
}

class Session;

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::shared_ptr<const Router> router;

  // Declared before io_context: sessions destroyed with it still unregister here.
  std::mutex mu;
  bool stopping = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  std::mutex stop_mu;
  bool stopped = false;
  // Read by sessions on any thread: responses written after Stop() began say Connection: close.
  std::atomic<bool> closing{false};

  net::io_context ioc;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  uint16_t port = 0;
  std::vector<std::thread> threads;

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Unregister(Session* s) {
    std::lock_guard lock(mu);
    sessions.erase(s);
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { server_->Unregister(this); }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  // Runs on the session's strand (posted by Server::Stop).
  void RequestStop() {
    stop_requested_ = true;
    if (!busy_) CloseNow();
  }

 private:
  const ServerOptions& options() const { return server_->options; }

  void ReadNext() {
    busy_ = false;
    if (stop_requested_) return CloseGracefully();
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    // Idle keep-alive: wait for the first byte of the next request under the idle timeout.
    stream_.expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->CloseNow();
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes));
    parser_->body_limit(options().max_body_bytes);
    stream_.expires_after(options().read_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    busy_ = true;
    const auto& header = parser_->get();
    if (const char* why = UnsafeFraming(header)) {
      // Nothing after this header can be told apart from a body: answer and close.
      return Send(BadRequestResponse(why), 11, false, true);
    }
    if (!parser_->is_done() && beast::iequals(header[bhttp::field::expect], "100-continue")) {
      continue_.emplace(bhttp::status::continue_, header.version());
      bhttp::async_write(stream_, *continue_,
                         [self = shared_from_this()](beast::error_code ec, size_t) {
                           if (ec) return self->CloseNow();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->OnReadError(ec);
                        self->HandleRequest();
                      });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return Send(PayloadTooLargeResponse(options().max_body_bytes), 11, false, true);
    }
    if (ec == bhttp::error::header_limit) {
      return Send(HeaderTooLargeResponse(options().max_header_bytes), 11, false, true);
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
        ec != bhttp::error::need_more && ec != bhttp::error::need_buffer) {
      // A syntax error of the HTTP message itself (bad method, bad header, bad chunk...).
      return Send(BadRequestResponse("Malformed HTTP request."), 11, false, true);
    }
    // End of stream, timeout, reset, stop: nothing useful can be sent.
    CloseNow();
  }

  void HandleRequest() {
    bhttp::request<bhttp::string_body> msg = parser_->release();
    parser_.reset();
    Request req;
    req.method.assign(msg.method_string());
    SplitTarget(msg.target(), &req);
    req.headers.reserve(8);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    Response res = server_->router->Handle(req);
    Send(std::move(res), msg.version(), msg.keep_alive(), false, msg.method() == bhttp::verb::head);
  }

  // With `head`, the response announces the Content-Length of `r.body` but carries no body.
  void Send(Response r, unsigned version, bool keep_alive, bool linger, bool head = false) {
    busy_ = true;
    keep_alive = keep_alive && !stop_requested_ && !linger && !server_->closing.load();
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(bhttp::field::server, "tally");
    res_.set(bhttp::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res_.set(name, value);
    res_.keep_alive(keep_alive);
    if (head) {
      res_.content_length(r.body.size());
    } else {
      res_.body() = std::move(r.body);
      res_.prepare_payload();
    }
    stream_.expires_after(options().write_timeout);
    bhttp::async_write(
        stream_, res_,
        [self = shared_from_this(), keep_alive, linger](beast::error_code ec, size_t) {
          if (ec) return self->CloseNow();
          if (linger) return self->Linger();
          if (!keep_alive) return self->CloseGracefully();
          self->ReadNext();
        });
  }

  // Half-closes, then discards what the client still sends, for at most kLingerTimeout.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTimeout);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec || self->stop_requested_) return self->CloseNow();
                              self->Drain();
                            });
  }

  void CloseGracefully() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    CloseNow();
  }

  void CloseNow() {
    beast::error_code ec;
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  Server::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  bhttp::response<bhttp::string_body> res_;
  std::array<char, 4096> drain_{};
  bool busy_ = false;  // between a request's header and its response being written
  bool stop_requested_ = false;
};

}  // namespace

void Server::Impl::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    // E.g. EMFILE: keep accepting; the connection that failed is lost either way.
    spdlog::warn("http: accept failed: {}", ec.message());
    return DoAccept();
  }
  auto session = std::make_shared<Session>(std::move(socket), this);
  {
    std::lock_guard lock(mu);
    if (stopping) return;  // the session closes its socket when destroyed
    sessions.emplace(session.get(), session);
  }
  session->Run();
  DoAccept();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

uint16_t Server::port() const { return impl_->port; }

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options,
                                              std::shared_ptr<const Router> router) {
  if (!router) return Fail(ErrorCode::kInvalidArgument, "http server: router is null");
  if (options.threads < 1) {
    return Fail(ErrorCode::kInvalidArgument, "http server: threads must be >= 1", "threads");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->router = std::move(router);
  const ServerOptions& o = impl->options;

  beast::error_code ec;
  tcp::endpoint endpoint;
  net::ip::address address = net::ip::make_address(o.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, o.port);
  } else {
    tcp::resolver resolver(impl->ioc);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return Fail(ErrorCode::kUnavailable,
                  "http server: cannot resolve host '" + o.host + "': " + ec.message(), "host");
    }
    endpoint = results.begin()->endpoint();
  }
  const std::string where = o.host + ":" + std::to_string(o.port);
  if (impl->acceptor.open(endpoint.protocol(), ec)) {
    return Fail(ErrorCode::kUnavailable, "http server: open " + where + ": " + ec.message());
  }
  impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (impl->acceptor.bind(endpoint, ec)) {
    return Fail(ErrorCode::kUnavailable, "http server: bind " + where + ": " + ec.message());
  }
  if (impl->acceptor.listen(net::socket_base::max_listen_connections, ec)) {
    return Fail(ErrorCode::kUnavailable, "http server: listen " + where + ": " + ec.message());
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  if (ec) {
    return Fail(ErrorCode::kUnavailable, "http server: local endpoint: " + ec.message());
  }

  impl->DoAccept();
  Impl* raw = impl.get();
  for (int i = 0; i < o.threads; ++i) {
    raw->threads.emplace_back([raw] {
      NameCurrentThread("tally-http");
      // Last-resort catch of an io thread: log and keep serving.
      for (;;) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread caught: {}", e.what());
        } catch (...) {
          spdlog::error("http: io thread caught a non-standard exception");
        }
      }
    });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  if (!impl_) return;
  std::lock_guard stop_lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->closing.store(true);

  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    for (auto& [ptr, weak] : impl_->sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  Impl* impl = impl_.get();
  net::post(impl->acceptor.get_executor(), [impl] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  for (auto& s : live) {
    Session* raw = s.get();
    net::dispatch(raw->executor(), [s] { s->RequestStop(); });
  }
  live.clear();  // sessions may now be destroyed on io threads (outside impl->mu)
  for (auto& t : impl->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace tally::http
