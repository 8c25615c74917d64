#pragma once
// The ASCII string helpers every component uses: case folding and trimming.
//
//   std::string type = tally::AsciiLower(tally::TrimBlanks(" Application/JSON "));
//   // type == "application/json"
//   std::string_view line = tally::TrimWhitespace("127.0.0.1:9092\r\n");  // "127.0.0.1:9092"
//
// Only ASCII is touched: bytes >= 0x80 (UTF-8 sequences) pass through unchanged. Pure and
// thread-safe; the string_view results point into the argument.

#include <string>
#include <string_view>

namespace tally {

// `s` with 'A'..'Z' mapped to 'a'..'z'.
std::string AsciiLower(std::string_view s);

// `s` without leading and trailing blanks (' ' and '\t'): HTTP header values (RFC 9110 OWS),
// items of comma-separated parameters.
std::string_view TrimBlanks(std::string_view s);

// `s` without leading and trailing whitespace (' ', '\t', '\r', '\n'): JSON texts, lines read
// from files.
std::string_view TrimWhitespace(std::string_view s);

}  // namespace tally
