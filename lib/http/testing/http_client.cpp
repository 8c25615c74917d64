#include "http/testing/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tally::http::testing {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::unexpected<Error> IoError(std::string_view what, const beast::error_code& ec) {
  return Fail(ErrorCode::kUnavailable, std::string(what) + ": " + ec.message());
}

}  // namespace

struct HttpClient::Impl {
  net::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
  std::string host;

  // `head`: the reply to a HEAD request (headers only, whatever its Content-Length says).
  Result<HttpReply> ReadReply(bool head = false) {
    beast::error_code ec;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 << 20);
    parser.skip(head);
    bhttp::read(socket, buffer, parser, ec);
    if (ec) return IoError("read", ec);
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
  if (impl_) {
    beast::error_code ec;
    impl_->socket.shutdown(tcp::socket::shutdown_both, ec);
    impl_->socket.close(ec);
  }
}

Result<HttpClient> HttpClient::Connect(const std::string& host, uint16_t port) {
  auto impl = std::make_unique<Impl>();
  impl->host = host + ":" + std::to_string(port);
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return IoError("resolve", ec);
  net::connect(impl->socket, results, ec);
  if (ec) return IoError("connect", ec);
  timeval tv{};
  tv.tv_sec = 10;
  ::setsockopt(impl->socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(impl->socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return HttpClient(std::move(impl));
}

Result<HttpReply> HttpClient::Send(std::string_view method, std::string_view target,
                                   std::string_view body, const StringPairs& headers) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, impl_->host);
  bool has_content_type = false;
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, "content-type")) has_content_type = true;
    req.insert(k, v);
  }
  if (!body.empty() && !has_content_type) req.set(bhttp::field::content_type, "application/json");
  req.body().assign(body);
  req.prepare_payload();
  beast::error_code ec;
  bhttp::write(impl_->socket, req, ec);
  if (ec) return IoError("write", ec);
  return impl_->ReadReply(method == "HEAD");
}

Result<HttpReply> HttpClient::SendRaw(std::string_view bytes) {
  beast::error_code ec;
  net::write(impl_->socket, net::buffer(bytes.data(), bytes.size()), ec);
  if (ec) return IoError("write", ec);
  return impl_->ReadReply();
}

uint16_t HttpClient::local_port() const {
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

}  // namespace tally::http::testing
