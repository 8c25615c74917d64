#pragma once
// The parser's field readers over simdjson's on-demand API: strings (without a copy when they
// hold no escape), ids, amounts, counts, objects, and ForEachField over an object's known keys.
// Each returns the rejection (internal/rejections.h) of a value that breaks its rule. They run for
// every field of every event, and event_parser.cpp is their only user: they have internal
// linkage (an unnamed namespace) and no `inline` hint, so GCC inlines them into the parse loop as
// it did when they were static functions of the .cpp; as external `inline` functions the parser
// took 7-10 % more CPU per event.

#include <simdjson.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/result.h"
#include "event/event_parser.h"
#include "event/internal/rejections.h"

namespace tally::event::internal {
namespace {  // NOLINT(build/namespaces): private to event_parser.cpp, see above

namespace od = simdjson::ondemand;
using simdjson::error_code;

std::string ChildPath(std::string_view parent, std::string_view key) {
  std::string p;
  if (!parent.empty()) p.append(parent).append(".");
  p.append(key);
  return p;
}

#define TALLY_EVENT_TRY(expr)                \
  do {                                       \
    if (auto _st = (expr); !_st) return _st; \
  } while (0)

// simdjson's get_string() and unescaped_key() copy every string into its string buffer to
// unescape it, through a virtual call. Event strings almost never hold an escape: those without
// a backslash are read where they lie in the input, and the others still go through simdjson,
// which decodes and validates escapes exactly as before. (Stage 1 has already rejected unclosed
// strings and control characters, so a string without a backslash cannot fail to unescape.)

// Given the first byte of a string's contents, returns its closing quote, or nullptr when a
// backslash comes first. Reads 16 bytes at a time (SSE2), so it may look up to 15 bytes past
// the quote: that is within the input's padding.
const char* PlainStringEnd(const char* p) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  for (;; p += 16) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int hits =
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, backslash)));
    if (hits != 0) {
      p += std::countr_zero(static_cast<unsigned>(hits));
      return *p == '"' ? p : nullptr;
    }
  }
#else
  // Without SSE2 (not an x86-64 build): a byte at a time.
  for (;; ++p) {
    if (*p == '"') return p;
    if (*p == '\\') return nullptr;
  }
#endif
}

// The key of `f`, unescaped; the view lives as long as the input or the parser's string buffer.
error_code KeyOf(od::field& f, std::string_view* key) {
  const char* start = f.key().raw();
  if (const char* end = PlainStringEnd(start)) {
    *key = std::string_view(start, static_cast<size_t>(end - start));
    return simdjson::SUCCESS;
  }
  return f.unescaped_key().get(*key);
}

// v.get_string(), without the copy when the string has no escape.
error_code GetString(od::value& v, std::string_view* s) {
  std::string_view token = v.raw_json_token();
  if (token.empty() || token[0] != '"') return v.get_string().get(*s);
  const char* start = token.data() + 1;
  const char* end = PlainStringEnd(start);
  if (end == nullptr) return v.get_string().get(*s);
  od::raw_json_string raw;  // only moves the iterator past the string
  if (auto e = v.get_raw_json_string().get(raw)) return e;
  *s = std::string_view(start, static_cast<size_t>(end - start));
  return simdjson::SUCCESS;
}

// Walks a value nobody asked for, so that malformed JSON is rejected even in fields that are
// ignored (the on-demand parser would otherwise skip it structurally without looking).
error_code SkipValidated(od::value& v, int depth) {
  od::json_type t;
  if (auto e = v.type().get(t)) return e;
  switch (t) {
    case od::json_type::object: {
      if (depth > kMaxNestingDepth) return simdjson::DEPTH_ERROR;
      od::object o;
      if (auto e = v.get_object().get(o)) return e;
      for (auto fr : o) {
        od::field f;
        if (auto e = std::move(fr).get(f)) return e;
        std::string_view key;
        if (auto e = KeyOf(f, &key)) return e;
        od::value child = f.value();
        if (auto e = SkipValidated(child, depth + 1)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      if (depth > kMaxNestingDepth) return simdjson::DEPTH_ERROR;
      od::array a;
      if (auto e = v.get_array().get(a)) return e;
      for (auto er : a) {
        od::value child;
        if (auto e = std::move(er).get(child)) return e;
        if (auto e = SkipValidated(child, depth + 1)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      double d;
      return v.get_double().get(d);
    }
    case od::json_type::string: {
      std::string_view s;
      return GetString(v, &s);
    }
    case od::json_type::boolean: {
      bool b;
      return v.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null;
      if (auto e = v.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::TAPE_ERROR;
}

// Type of `v`; a null is fully validated here (callers treat it as "absent"). Returns a bare
// error code (the caller makes it a JsonError) so that the common case carries no Result<>.
error_code TypeOf(od::value& v, od::json_type* t) {
  if (auto e = v.type().get(*t)) return e;
  if (*t == od::json_type::null) {
    bool is_null;
    if (auto e = v.is_null().get(is_null)) return e;
    if (!is_null) return simdjson::N_ATOM_ERROR;
  }
  return simdjson::SUCCESS;
}

// A string or null. `*present` is false for null.
Status ReadStringView(od::value& v, std::string_view path, std::string_view* s, bool* present) {
  od::json_type t;
  if (auto e = TypeOf(v, &t)) return JsonError(path, e);
  if (t == od::json_type::null) {
    *present = false;
    return Ok();
  }
  if (t != od::json_type::string) return Reject(path, Reason::kNotString);
  if (auto e = GetString(v, s)) return JsonError(path, e);
  *present = true;
  return Ok();
}

// *dst = s, in dst's capacity when it is enough. std::string::assign goes through the general
// _M_replace (aliasing checks and all) and append() through length checks that throw;
// resize_and_overwrite is a capacity check and a copy. The callback ignores its size argument:
// libstdc++ 12 passes the grown capacity instead of the requested size when it reallocates.
void AssignTo(std::string* dst, std::string_view s) {
  dst->resize_and_overwrite(s.size(), [s](char* p, size_t) {
    std::memcpy(p, s.data(), s.size());
    return s.size();
  });
}

// A string or null, at most `max` bytes, non-empty when `non_empty`; copied into *dst.
Status ReadString(od::value& v, std::string_view path, size_t max, bool non_empty, std::string* dst,
                  bool* present) {
  std::string_view s;
  TALLY_EVENT_TRY(ReadStringView(v, path, &s, present));
  if (!*present) return Ok();
  if (s.size() > max) {
    return Reject(path, max == kMaxIdBytes ? Reason::kIdTooLong : Reason::kTextTooLong);
  }
  if (non_empty && s.empty()) return Reject(path, Reason::kEmpty);
  AssignTo(dst, s);
  return Ok();
}

// 2^63 and 2^64: the first doubles that do not fit in int64_t and uint64_t.
inline constexpr double kTwoPow63 = 9223372036854775808.0;
inline constexpr double kTwoPow64 = 18446744073709551616.0;

// simdjson 3.0 fails integers beyond 64 bits with NUMBER_ERROR, like malformed numbers: tell
// them apart by their token so that the reason says "out of range".
bool IsBigIntegerToken(std::string_view tok) {
  while (!tok.empty() &&
         (tok.back() == ' ' || tok.back() == '\t' || tok.back() == '\n' || tok.back() == '\r')) {
    tok.remove_suffix(1);
  }
  if (tok.starts_with('-')) tok.remove_prefix(1);
  if (tok.size() <= 19 || tok[0] == '0') return false;
  for (char c : tok) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The number at `v`, with out-of-range integers reported as such.
Status ReadNumber(od::value& v, std::string_view path, od::number* n,
                  Reason big = Reason::kOutOfRange, std::string_view big_detail = {}) {
  std::string_view token = v.raw_json_token();
  if (auto e = v.get_number().get(*n)) {
    if (e == simdjson::NUMBER_ERROR && IsBigIntegerToken(token)) {
      return Reject(path, big, big_detail);
    }
    return JsonError(path, e);
  }
  return Ok();
}

// An identifier: a string, or an integer JSON number written as its decimal string (producers
// with numeric user ids). 42.0 and 4.2e1 are integers too (JSON Schema semantics) -> "42".
Status ReadId(od::value& v, std::string_view path, bool non_empty, std::string* dst,
              bool* present) {
  od::json_type t;
  if (auto e = TypeOf(v, &t)) return JsonError(path, e);
  if (t == od::json_type::string || t == od::json_type::null) {
    return ReadString(v, path, kMaxIdBytes, non_empty, dst, present);
  }
  if (t != od::json_type::number) return Reject(path, Reason::kNotId);
  od::number n;
  TALLY_EVENT_TRY(ReadNumber(v, path, &n));
  char buf[24];
  std::to_chars_result r;
  switch (n.get_number_type()) {
    case od::number_type::signed_integer:
      r = std::to_chars(buf, buf + sizeof(buf), n.get_int64());
      break;
    case od::number_type::unsigned_integer:
      r = std::to_chars(buf, buf + sizeof(buf), n.get_uint64());
      break;
    default: {
      double d = n.get_double();
      if (std::trunc(d) != d) return Reject(path, Reason::kNotId);
      if (d >= 0 && d < kTwoPow64) {
        r = std::to_chars(buf, buf + sizeof(buf), static_cast<uint64_t>(d));
      } else if (d < 0 && d >= -kTwoPow63) {
        r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(d));
      } else {
        return Reject(path, Reason::kOutOfRange);
      }
      break;
    }
  }
  AssignTo(dst, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  *present = true;
  return Ok();
}

// An optional number: finite (JSON cannot say otherwise), >= 0 and <= max (`max_detail` says
// so in the rejection). -0 is read as 0.
Status ReadAmount(od::value& v, std::string_view path, double max, std::string_view max_detail,
                  std::optional<double>* dst) {
  od::json_type t;
  if (auto e = TypeOf(v, &t)) return JsonError(path, e);
  if (t == od::json_type::null) return Ok();
  if (t != od::json_type::number) return Reject(path, Reason::kNotNumber);
  double d;
  if (auto e = v.get_double().get(d)) return JsonError(path, e);
  if (!std::isfinite(d)) return Reject(path, Reason::kInvalidNumber);
  if (d < 0) return Reject(path, Reason::kNegative);
  if (d > max) return Reject(path, Reason::kValueOutOfRange, max_detail);
  *dst = d + 0.0;  // -0 + 0 == +0
  return Ok();
}

// An optional integer in [0, kMaxCount].
Status ReadCount(od::value& v, std::string_view path, std::optional<int64_t>* dst) {
  od::json_type t;
  if (auto e = TypeOf(v, &t)) return JsonError(path, e);
  if (t == od::json_type::null) return Ok();
  if (t != od::json_type::number) return Reject(path, Reason::kNotInteger);
  od::number n;
  TALLY_EVENT_TRY(ReadNumber(v, path, &n, Reason::kValueOutOfRange, kMaxCountDetail));
  switch (n.get_number_type()) {
    case od::number_type::signed_integer:
      if (n.get_int64() < 0) return Reject(path, Reason::kNegative);
      if (n.get_int64() > kMaxCount) {
        return Reject(path, Reason::kValueOutOfRange, kMaxCountDetail);
      }
      *dst = n.get_int64();
      return Ok();
    case od::number_type::unsigned_integer:  // simdjson uses it only above INT64_MAX
      return Reject(path, Reason::kValueOutOfRange, kMaxCountDetail);
    default: {
      double d = n.get_double();
      if (std::trunc(d) != d) return Reject(path, Reason::kNotInteger);
      if (d < 0) return Reject(path, Reason::kNegative);
      if (d > static_cast<double>(kMaxCount)) {
        return Reject(path, Reason::kValueOutOfRange, kMaxCountDetail);
      }
      *dst = static_cast<int64_t>(d);
      return Ok();
    }
  }
}

// An object or null. `*present` is false for null.
Status ReadObject(od::value& v, std::string_view path, od::object* obj, bool* present) {
  od::json_type t;
  if (auto e = TypeOf(v, &t)) return JsonError(path, e);
  if (t == od::json_type::null) {
    *present = false;
    return Ok();
  }
  if (t != od::json_type::object) return Reject(path, Reason::kNotObject);
  if (auto e = v.get_object().get(*obj)) return JsonError(path, e);
  *present = true;
  return Ok();
}

struct Key {
  std::string_view name;
  std::string_view path;  // full JSON path, for error messages
};

// Index of `key` in kKeys, or std::size(kKeys). Unrolled over the table so that each comparison
// is a length check and an inlined compare with a constant (no memcmp call per key).
template <const auto& kKeys, size_t... I>
size_t FindKeyIn(std::string_view key, std::index_sequence<I...>) {
  size_t found = sizeof...(I);
  (void)((key.size() == kKeys[I].name.size() &&
          std::memcmp(key.data(), kKeys[I].name.data(), kKeys[I].name.size()) == 0 &&
          (found = I, true)) ||
         ...);
  return found;
}

// Calls on_known(index, value, path) for each key of kKeys (a duplicate is rejected) and
// validates-and-ignores every other key.
template <const auto& kKeys, typename F>
Status ForEachField(od::object& obj, std::string_view path, int depth, F&& on_known) {
  constexpr size_t N = std::size(kKeys);
  static_assert(N <= 32);
  uint32_t seen = 0;
  for (auto fr : obj) {
    od::field f;
    if (auto e = std::move(fr).get(f)) return JsonError(path, e);
    std::string_view key;
    if (auto e = KeyOf(f, &key)) return JsonError(path, e);
    od::value v = f.value();
    const size_t i = FindKeyIn<kKeys>(key, std::make_index_sequence<N>());
    if (i == N) {
      if (auto e = SkipValidated(v, depth + 1)) return JsonError(ChildPath(path, key), e);
      continue;
    }
    if (seen & (1u << i)) return Reject(kKeys[i].path, Reason::kDuplicateKey);
    seen |= 1u << i;
    TALLY_EVENT_TRY(on_known(i, v, kKeys[i].path));
  }
  return Ok();
}

}  // namespace
}  // namespace tally::event::internal
