#include "common/json_writer.h"

#include <array>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>

namespace tally {

namespace {

// 1 for the bytes that JSON strings must escape ('"', '\\' and control characters).
constexpr std::array<uint8_t, 256> kNeedsEscape = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  return t;
}();

void AppendEscaped(std::string* out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  switch (c) {
    case '"':
      out->append("\\\"");
      break;
    case '\\':
      out->append("\\\\");
      break;
    case '\n':
      out->append("\\n");
      break;
    case '\r':
      out->append("\\r");
      break;
    case '\t':
      out->append("\\t");
      break;
    default: {
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(u, sizeof u);
    }
  }
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  // Runs of bytes that need no escaping (nearly all of them) are appended at once.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!kNeedsEscape[c]) continue;
    out->append(s.data() + run, i - run);
    AppendEscaped(out, c);
    run = i + 1;
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

void AppendJsonInt(std::string* out, int64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, r.ptr);
}

namespace {

// Fast path for values that are a whole number of billionths n / 1e9 (the request endpoints'
// nano-dollar costs) with 1e6 <= n < 1e15 and n not a multiple of 1e9: appends what
// std::to_chars writes for them and returns true; false (nothing appended) for anything else.
// Why the bytes are the same: n / 1e9 has at most 15 significant digits; a double near it is
// precise to ~2.2e-16 relatively, finer than the spacing of 15-digit decimals, so the shortest
// decimal that rounds to the double is n / 1e9 itself (and no other decimal of that length);
// with values in [0.001, 1e6) the fixed form of those digits is never longer than the
// scientific one, and to_chars resolves ties in favour of fixed.
bool AppendBillionths(std::string* out, double value) {
  if (!(value >= 0.001 && value < 1e6)) return false;
  // Any n will do as long as the check below holds: it makes `value` that quotient's double.
  const int64_t n = static_cast<int64_t>(value * 1e9 + 0.5);
  if (n < 1'000'000 || n >= 1'000'000'000'000'000 || n % 1'000'000'000 == 0) return false;
  if (static_cast<double>(n) / 1e9 != value) return false;
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char buf[32];
  char* p = std::to_chars(buf, buf + 20, n / 1'000'000'000).ptr;
  *p++ = '.';
  // The 9 fraction digits (leading zeros kept), then without the trailing zeros.
  uint32_t frac = static_cast<uint32_t>(n % 1'000'000'000);
  p[0] = static_cast<char>('0' + frac / 100'000'000);
  frac %= 100'000'000;
  for (int i = 7; i >= 1; i -= 2, frac /= 100) {
    std::memcpy(p + i, kPairs + 2 * (frac % 100), 2);
  }
  int digits = 9;
  while (p[digits - 1] == '0') --digits;
  out->append(buf, p + digits);
  return true;
}

}  // namespace

void AppendJsonDouble(std::string* out, double value) {
  if (!std::isfinite(value)) [[unlikely]] {
    // JSON has no NaN or infinity, and a number must stay a number: clamp.
    value = std::isnan(value) ? 0.0 : (value > 0 ? DBL_MAX : -DBL_MAX);
  }
  if (value == std::trunc(value) && std::fabs(value) < 9e15) {
    AppendJsonInt(out, static_cast<int64_t>(value));
    return;
  }
  if (AppendBillionths(out, value)) return;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, r.ptr);
}

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_->push_back(',');
    first_.back() = false;
  }
}

void JsonWriter::BeginObject() {
  Separate();
  out_->push_back('{');
  first_.push_back(true);
}

void JsonWriter::EndObject() {
  out_->push_back('}');
  first_.pop_back();
}

void JsonWriter::BeginArray() {
  Separate();
  out_->push_back('[');
  first_.push_back(true);
}

void JsonWriter::EndArray() {
  out_->push_back(']');
  first_.pop_back();
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  Separate();
  AppendJsonString(out_, key);
  out_->push_back(':');
  after_key_ = true;
  return *this;
}

void JsonWriter::String(std::string_view value) {
  Separate();
  AppendJsonString(out_, value);
}

void JsonWriter::Int(int64_t value) {
  Separate();
  AppendJsonInt(out_, value);
}

void JsonWriter::Double(double value) {
  Separate();
  AppendJsonDouble(out_, value);
}

void JsonWriter::StringOrNull(const std::optional<std::string>& value) {
  if (value) {
    String(*value);
  } else {
    Null();
  }
}

void JsonWriter::Bool(bool value) {
  Separate();
  out_->append(value ? "true" : "false");
}

void JsonWriter::Null() {
  Separate();
  out_->append("null");
}

void JsonWriter::Raw(std::string_view json) {
  Separate();
  out_->append(json);
}

}  // namespace tally
