#include "common/parse.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

namespace tally {
namespace {

std::unexpected<Error> Invalid(std::string_view name, const std::string& what,
                               std::string_view text) {
  std::string message = name.empty() ? std::string() : std::string(name) + ": ";
  message += what + ", got '" + std::string(text) + "'";
  return Fail(ErrorCode::kInvalidArgument, std::move(message), std::string(name));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Digits with an optional leading '-' (when `allow_minus`), nothing else.
bool PlainInteger(std::string_view text, bool allow_minus) {
  if (allow_minus && !text.empty() && text.front() == '-') text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

std::string IntegerRange(std::string_view noun, const std::string& min, const std::string& max) {
  return std::string(noun) + " must be an integer from " + min + " to " + max;
}

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

Result<int64_t> ParseInt64(std::string_view text, int64_t min, int64_t max, std::string_view name) {
  const std::string want = IntegerRange("the value", std::to_string(min), std::to_string(max));
  if (!PlainInteger(text, /*allow_minus=*/true)) return Invalid(name, want, text);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return Invalid(name, want, text);
  }
  return v;
}

Result<uint64_t> ParseUint64(std::string_view text, uint64_t min, uint64_t max,
                             std::string_view name) {
  const std::string want = IntegerRange("the value", std::to_string(min), std::to_string(max));
  if (!PlainInteger(text, /*allow_minus=*/false)) return Invalid(name, want, text);
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return Invalid(name, want, text);
  }
  return v;
}

Result<double> ParseDouble(std::string_view text, double min, double max, std::string_view name) {
  const std::string want =
      "the value must be a number from " + FormatNumber(min) + " to " + FormatNumber(max);
  // from_chars accepts "inf", "nan" and hex digits only with the matching format; require a
  // digit first (after an optional '-') so that none of them gets through.
  std::string_view rest = text;
  if (!rest.empty() && rest.front() == '-') rest.remove_prefix(1);
  if (rest.empty() ||
      !(IsDigit(rest.front()) || (rest.front() == '.' && rest.size() > 1 && IsDigit(rest[1])))) {
    return Invalid(name, want, text);
  }
  double v = 0;
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), v, std::chars_format::general);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v) || v < min ||
      v > max) {
    return Invalid(name, want, text);
  }
  return v;
}

Result<uint16_t> ParsePort(std::string_view text, bool allow_zero, std::string_view name) {
  const int64_t min = allow_zero ? 0 : 1;
  const std::string want = IntegerRange("the port", std::to_string(min), "65535");
  if (!PlainInteger(text, /*allow_minus=*/false)) return Invalid(name, want, text);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < min || v > 65535) {
    return Invalid(name, want, text);
  }
  return static_cast<uint16_t>(v);
}

Result<HostPort> ParseHostPort(std::string_view text, bool allow_zero_port, std::string_view name) {
  const std::string want = "expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)";
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1 || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return Invalid(name, want, text);
    }
    out.host.assign(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return Invalid(name, want, text);
    std::string_view host = text.substr(0, colon);
    // An unbracketed IPv6 address would be ambiguous ("::1:80").
    if (host.find(':') != std::string_view::npos) return Invalid(name, want, text);
    out.host.assign(host);
    port_text = text.substr(colon + 1);
  }
  auto port = ParsePort(port_text, allow_zero_port, name);
  if (!port) {
    return Invalid(name, IntegerRange("the port", allow_zero_port ? "0" : "1", "65535"), text);
  }
  out.port = *port;
  return out;
}

std::optional<size_t> Utf8Length(std::string_view text) {
  size_t chars = 0;
  size_t i = 0;
  const size_t n = text.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80; };
  while (i < n) {
    const uint8_t b = static_cast<uint8_t>(text[i]);
    if (b < 0x80) {
      i += 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      if (!cont(i + 1)) return std::nullopt;
      i += 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      if (!cont(i + 1) || !cont(i + 2)) return std::nullopt;
      const uint8_t b1 = static_cast<uint8_t>(text[i + 1]);
      if (b == 0xE0 && b1 < 0xA0) return std::nullopt;   // overlong
      if (b == 0xED && b1 >= 0xA0) return std::nullopt;  // UTF-16 surrogate
      i += 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return std::nullopt;
      const uint8_t b1 = static_cast<uint8_t>(text[i + 1]);
      if (b == 0xF0 && b1 < 0x90) return std::nullopt;   // overlong
      if (b == 0xF4 && b1 >= 0x90) return std::nullopt;  // above U+10FFFF
      i += 4;
    } else {
      return std::nullopt;  // a continuation byte first, 0xC0/0xC1 (overlong) or 0xF5..0xFF
    }
    ++chars;
  }
  return chars;
}

}  // namespace tally
