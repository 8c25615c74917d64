#pragma once
// Checked parsing of numbers, ports and HOST:PORT addresses from text (command-line flags,
// config values, arguments of a spec such as "offsets:0=12").
//
//   auto port = tally::ParsePort("8080", /*allow_zero=*/false, "--listen");
//   if (!port) { std::fprintf(stderr, "%s\n", port.error().message.c_str()); return 2; }
//   auto addr = tally::ParseHostPort("127.0.0.1:8080", /*allow_zero_port=*/true, "--listen");
//   // addr->host == "127.0.0.1", addr->port == 8080
//
// Numbers are plain decimal: an optional '-' (never '+'), digits, nothing else (no spaces, no
// hex, no exponent for integers); the whole text must be consumed. Every failure is a
// kInvalidArgument whose `field` is `name` and whose message starts with `name`, e.g.
// "--listen: the port must be an integer from 0 to 65535, got '127.0.0.1:abc'" (with an empty
// `name`, the message starts at "the port..."). Pure and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tally {

// An integer in [min, max].
Result<int64_t> ParseInt64(std::string_view text, int64_t min, int64_t max, std::string_view name);

// An unsigned integer in [min, max] (a leading '-' is refused).
Result<uint64_t> ParseUint64(std::string_view text, uint64_t min, uint64_t max,
                             std::string_view name);

// A finite decimal number in [min, max] ("1.5", "2", "1e3"; not "nan", "inf" or hex).
Result<double> ParseDouble(std::string_view text, double min, double max, std::string_view name);

// A TCP port: 1..65535, or 0..65535 with allow_zero (0 = "any free port" where supported).
Result<uint16_t> ParsePort(std::string_view text, bool allow_zero, std::string_view name);

struct HostPort {
  std::string host;  // non-empty; an IPv6 address without its brackets
  uint16_t port = 0;
};

// "HOST:PORT" or "[IPV6]:PORT". HOST must be non-empty and PORT as ParsePort.
Result<HostPort> ParseHostPort(std::string_view text, bool allow_zero_port, std::string_view name);

// The number of characters (Unicode code points) of `text` if it is well-formed UTF-8 (RFC 3629:
// shortest form only, no surrogates, nothing above U+10FFFF), else nullopt.
std::optional<size_t> Utf8Length(std::string_view text);

}  // namespace tally
