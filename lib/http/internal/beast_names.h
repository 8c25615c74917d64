#pragma once
// The short names tally::http's sources use for Boost.Asio and Boost.Beast. Internal to
// tally::http: include it from .cpp files only.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tally::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

}  // namespace tally::http
