#include "event/event_parser.h"

#include <simdjson.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/calendar.h"

namespace tally::event {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

enum class Category : uint8_t {
  kInvalidJson,
  kTooLarge,
  kMissingField,
  kInvalidType,
  kInvalidValue,
  kUnknownType,
  kBadTime,
  kOutOfRange,
  kTimeOutOfRange,
};

constexpr std::string_view kCategoryNames[] = {
    "invalid_json", "too_large", "missing_field", "invalid_type",      "invalid_value",
    "unknown_type", "bad_time",  "out_of_range",  "time_out_of_range",
};

enum class Reason : uint8_t {
  kInvalidJson,
  kDuplicateKey,
  kTrailingContent,
  kInvalidNumber,
  kMessageTooLarge,
  kIdTooLong,
  kTextTooLong,
  kTooDeep,
  kMissingString,
  kMissingObject,
  kMissingId,
  kNotJsonObject,
  kNotObject,
  kNotString,
  kNotNumber,
  kNotInteger,
  kNotId,
  kEmpty,
  kBadSpecversion,
  kNegative,
  kBadVisibility,
  kOutOfRange,
  kUnknownType,
  kBadTime,
  kValueOutOfRange,
  kTimeOutOfRange,
};

struct ReasonInfo {
  Reason reason;
  Category category;
  std::string_view text;  // stable: ReasonCategory() looks messages up by this text
};

static_assert(kMaxEventBytes == 65536 && kMaxIdBytes == 256 && kMaxTextBytes == 2048 &&
                  kMaxNestingDepth == 32,
              "update the reason texts below");

constexpr ReasonInfo kReasons[] = {
    {Reason::kInvalidJson, Category::kInvalidJson, "invalid JSON"},
    {Reason::kDuplicateKey, Category::kInvalidJson, "duplicate key"},
    {Reason::kTrailingContent, Category::kInvalidJson, "trailing content after the JSON object"},
    {Reason::kInvalidNumber, Category::kInvalidJson, "invalid or out-of-range JSON number"},
    {Reason::kMessageTooLarge, Category::kTooLarge, "message is larger than 65536 bytes"},
    {Reason::kIdTooLong, Category::kTooLarge, "longer than 256 bytes"},
    {Reason::kTextTooLong, Category::kTooLarge, "longer than 2048 bytes"},
    {Reason::kTooDeep, Category::kTooLarge, "nested deeper than 32 levels"},
    {Reason::kMissingString, Category::kMissingField, "required string is missing"},
    {Reason::kMissingObject, Category::kMissingField, "required object is missing"},
    {Reason::kMissingId, Category::kMissingField, "required string or integer is missing"},
    {Reason::kNotJsonObject, Category::kInvalidType, "message must be a JSON object"},
    {Reason::kNotObject, Category::kInvalidType, "must be an object"},
    {Reason::kNotString, Category::kInvalidType, "must be a string"},
    {Reason::kNotNumber, Category::kInvalidType, "must be a number"},
    {Reason::kNotInteger, Category::kInvalidType, "must be an integer"},
    {Reason::kNotId, Category::kInvalidType, "must be a string or an integer"},
    {Reason::kEmpty, Category::kInvalidValue, "must not be empty"},
    {Reason::kBadSpecversion, Category::kInvalidValue, "must be \"1.0\""},
    {Reason::kNegative, Category::kInvalidValue, "must be >= 0"},
    {Reason::kBadVisibility, Category::kInvalidValue,
     "must be one of private, workspace, public_with_login, public_without_login"},
    {Reason::kOutOfRange, Category::kInvalidValue, "integer is out of range"},
    {Reason::kUnknownType, Category::kUnknownType, "unknown event type"},
    {Reason::kBadTime, Category::kBadTime, "not an RFC 3339 date-time with offset"},
    {Reason::kValueOutOfRange, Category::kOutOfRange, "value out of range"},
    {Reason::kTimeOutOfRange, Category::kTimeOutOfRange, "time out of range"},
};

static_assert(kMaxCount == 1'000'000'000'000 && kMaxCostUsd == 1e6,
              "update the range details below");
constexpr std::string_view kMaxCountDetail = "at most 1e12";
constexpr std::string_view kMaxCostDetail = "at most 1e6";

constexpr bool ReasonTableInOrder() {
  for (size_t i = 0; i < std::size(kReasons); ++i) {
    if (static_cast<size_t>(kReasons[i].reason) != i) return false;
  }
  return true;
}
static_assert(ReasonTableInOrder());

constexpr std::string_view kRootPath = "$";
constexpr std::string_view kUnknownTypeDetail =
    "expected agent.* or workflow.* with created, updated, deleted, executed, copied or shared";

std::unexpected<Error> Reject(std::string_view field, Reason reason, std::string_view detail = {}) {
  const ReasonInfo& info = kReasons[static_cast<size_t>(reason)];
  std::string message;
  message.reserve(field.size() + info.text.size() + detail.size() + 6);
  message.append(field).append(": ").append(info.text);
  if (!detail.empty()) message.append(" (").append(detail).append(")");
  ErrorCode code = info.category == Category::kTooLarge ? ErrorCode::kResourceExhausted
                                                        : ErrorCode::kInvalidArgument;
  return Fail(code, std::move(message), std::string(field));
}

// Short, stable wording for simdjson's syntax errors (its own messages are long sentences).
std::string_view SyntaxDetail(error_code e) {
  switch (e) {
    case simdjson::UTF8_ERROR:
      return "invalid UTF-8";
    case simdjson::UNCLOSED_STRING:
      return "unclosed string";
    case simdjson::UNESCAPED_CHARS:
      return "unescaped control character in string";
    case simdjson::STRING_ERROR:
      return "invalid string escape";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
      return "invalid literal";
    case simdjson::EMPTY:
      return "empty message";
    case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
      return "unterminated object or array";
    case simdjson::TRAILING_CONTENT:
      return "trailing content";
    default:
      return "malformed structure";
  }
}

// A simdjson failure while reading the value at `path`, other than a type mismatch (which the
// callers report with the type they expected).
std::unexpected<Error> JsonError(std::string_view path, error_code e) {
  if (path.empty()) path = kRootPath;
  switch (e) {
    case simdjson::NUMBER_ERROR:
    case simdjson::NUMBER_OUT_OF_RANGE:
      return Reject(path, Reason::kInvalidNumber);
    case simdjson::DEPTH_ERROR:
      return Reject(path, Reason::kTooDeep);
    case simdjson::CAPACITY:
      return Reject(kRootPath, Reason::kMessageTooLarge);
    default:
      return Reject(path, Reason::kInvalidJson, SyntaxDetail(e));
  }
}

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
constexpr double kTwoPow63 = 9223372036854775808.0;
constexpr double kTwoPow64 = 18446744073709551616.0;

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

enum TopKey { kSpecversion, kId, kSource, kType, kTime, kData };
constexpr Key kTopKeys[] = {{"specversion", "specversion"},
                            {"id", "id"},
                            {"source", "source"},
                            {"type", "type"},
                            {"time", "time"},
                            {"data", "data"}};

enum DataKey {
  kWorkspaceId,
  kOrganizationId,
  kProjectId,
  kUser,
  kAgent,
  kWorkflow,
  kDurationMs,
  kTokens,
  kCostUsd,
  kMessageCredits,
  kIntegrationCredits,
  kStatus
};
constexpr Key kDataKeys[] = {
    {"workspace_id", "data.workspace_id"},
    {"organization_id", "data.organization_id"},
    {"project_id", "data.project_id"},
    {"user", "data.user"},
    {"agent", "data.agent"},
    {"workflow", "data.workflow"},
    {"duration_ms", "data.duration_ms"},
    {"tokens", "data.tokens"},
    {"cost_usd", "data.cost_usd"},
    {"message_credits", "data.message_credits"},
    {"integration_credits", "data.integration_credits"},
    {"status", "data.status"},
};

enum UserKey { kUserId, kUserName, kUserEmail, kUserPhoto };
constexpr Key kUserKeys[] = {{"id", "data.user.id"},
                             {"name", "data.user.name"},
                             {"email", "data.user.email"},
                             {"photo", "data.user.photo"}};

enum EntityKey { kEntityId, kEntityName, kEntityVisibility, kEntityOwner };
constexpr Key kAgentKeys[] = {{"id", "data.agent.id"},
                              {"name", "data.agent.name"},
                              {"visibility", "data.agent.visibility"},
                              {"owner_user_id", "data.agent.owner_user_id"}};
constexpr Key kWorkflowKeys[] = {{"id", "data.workflow.id"},
                                 {"name", "data.workflow.name"},
                                 {"visibility", "data.workflow.visibility"},
                                 {"owner_user_id", "data.workflow.owner_user_id"}};

bool IsVisibility(std::string_view s) {
  return s == "private" || s == "workspace" || s == "public_with_login" ||
         s == "public_without_login";
}

// data.agent or data.workflow, kept aside until `type` says which one is the subject (keys may
// come in any order). Both are validated when present.
struct EntityScratch {
  bool present = false;
  bool has_id = false;
  std::string id, name, visibility, owner_user_id;

  void Clear() {
    present = has_id = false;
    id.clear();
    name.clear();
    visibility.clear();
    owner_user_id.clear();
  }
};

void Reset(UsageEvent* e) {
  e->id.clear();
  e->source.clear();
  e->kind = EntityKind::kAgent;
  e->action = Action::kExecuted;
  e->time_ms = 0;
  e->workspace_id.clear();
  e->organization_id.clear();
  e->project_id.clear();
  e->user_id.clear();
  e->user_name.clear();
  e->user_email.clear();
  e->user_photo.clear();
  e->entity_id.clear();
  e->entity_name.clear();
  e->entity_visibility.clear();
  e->entity_owner_user_id.clear();
  e->duration_ms.reset();
  e->tokens.reset();
  e->cost_usd.reset();
  e->message_credits.reset();
  e->integration_credits.reset();
  e->status.clear();
}

// "time is not RFC 3339 (too short)" -> "too short"; keeps the reason short and free of the
// value.
std::string_view TimeDetail(std::string_view m) {
  if (m.starts_with("time is ")) m.remove_prefix(8);
  if (m.starts_with("not RFC 3339 (") && m.ends_with(")")) {
    m.remove_prefix(14);
    m.remove_suffix(1);
  }
  return m;
}

}  // namespace

std::string_view ReasonCategory(const Error& error) {
  std::string_view m = error.message;
  if (!m.starts_with(error.field) || m.substr(error.field.size(), 2) != ": ") return "other";
  m.remove_prefix(error.field.size() + 2);
  if (size_t paren = m.find(" ("); paren != std::string_view::npos) m = m.substr(0, paren);
  for (const ReasonInfo& r : kReasons) {
    if (r.text == m) return kCategoryNames[static_cast<size_t>(r.category)];
  }
  return "other";
}

// The message is not an object: say whether it is JSON of another type or not JSON at all.
std::unexpected<Error> RejectNonObject(od::document& doc) {
  doc.rewind();
  od::json_type t;
  error_code e = doc.type().get(t);
  if (!e) {
    switch (t) {
      case od::json_type::array:
      case od::json_type::object:
        break;
      case od::json_type::string: {
        std::string_view s;
        e = doc.get_string().get(s);
        break;
      }
      case od::json_type::number: {
        double d;
        e = doc.get_double().get(d);
        break;
      }
      case od::json_type::boolean: {
        bool b;
        e = doc.get_bool().get(b);
        break;
      }
      case od::json_type::null: {
        bool is_null = false;
        e = doc.is_null().get(is_null);
        if (!e && !is_null) e = simdjson::N_ATOM_ERROR;
        break;
      }
    }
  }
  if (e) return JsonError(kRootPath, e);
  return Reject(kRootPath, Reason::kNotJsonObject);
}

struct EventParser::Impl {
  Limits limits;
  od::parser parser{kMaxEventBytes};
  std::unique_ptr<char[]> buffer{new char[kMaxEventBytes + simdjson::SIMDJSON_PADDING]};
  EntityScratch agent, workflow;

  explicit Impl(const Limits& l) : limits(l) {
    // Sized once for the largest message so that no parse reallocates. A failure here only
    // means iterate() retries the allocation and reports it.
    [[maybe_unused]] error_code ignored = parser.allocate(kMaxEventBytes);
  }

  Status Run(std::string_view json, UsageEvent* out);
  Status CheckTime(std::string_view path, int64_t time_ms) const;
  Status ParseData(od::value& v, UsageEvent* out, bool* present);
  Status ParseUser(od::value& v, UsageEvent* out, bool* present);
  template <const auto& kKeys>
  Status ParseEntity(od::value& v, EntityScratch* e);
};

Status EventParser::Impl::Run(std::string_view json, UsageEvent* out) {
  if (json.size() > kMaxEventBytes) return Reject(kRootPath, Reason::kMessageTooLarge);
  // simdjson reads up to SIMDJSON_PADDING bytes past the end: parse a padded copy.
  std::memcpy(buffer.get(), json.data(), json.size());
  std::memset(buffer.get() + json.size(), ' ', simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (auto e = parser.iterate(buffer.get(), json.size(), json.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc)) {
    return JsonError(kRootPath, e);
  }
  od::object root;
  if (auto e = doc.get_object().get(root)) {
    if (e == simdjson::INCORRECT_TYPE) return RejectNonObject(doc);
    return JsonError(kRootPath, e);
  }

  Reset(out);
  agent.Clear();
  workflow.Clear();
  bool has_spec = false, has_id = false, has_source = false, has_type = false, has_time = false,
       has_data = false;

  TALLY_EVENT_TRY(ForEachField<kTopKeys>(
      root, "", 1, [&](size_t key, od::value& v, std::string_view path) -> Status {
        std::string_view s;
        switch (key) {
          case kSpecversion:
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_spec));
            if (has_spec && s != "1.0") return Reject(path, Reason::kBadSpecversion);
            return Ok();
          case kId:
            return ReadString(v, path, kMaxIdBytes, true, &out->id, &has_id);
          case kSource:
            return ReadString(v, path, kMaxIdBytes, true, &out->source, &has_source);
          case kType:
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_type));
            if (!has_type) return Ok();
            if (s.empty()) return Reject(path, Reason::kEmpty);
            if (!ParseEventType(s, &out->kind, &out->action)) {
              return Reject(path, Reason::kUnknownType, kUnknownTypeDetail);
            }
            return Ok();
          case kTime: {
            TALLY_EVENT_TRY(ReadStringView(v, path, &s, &has_time));
            if (!has_time) return Ok();
            if (s.empty()) return Reject(path, Reason::kEmpty);
            Result<int64_t> t = ParseRfc3339Millis(s);
            if (!t) return Reject(path, Reason::kBadTime, TimeDetail(t.error().message));
            TALLY_EVENT_TRY(CheckTime(path, *t));
            out->time_ms = *t;
            return Ok();
          }
          case kData:
            return ParseData(v, out, &has_data);
        }
        return Ok();
      }));

  const char* end;
  if (auto e = doc.current_location().get(end); e != simdjson::OUT_OF_BOUNDS) {
    return Reject(kRootPath, Reason::kTrailingContent);
  }

  if (!has_spec) return Reject("specversion", Reason::kMissingString);
  if (!has_id) return Reject("id", Reason::kMissingString);
  if (!has_source) return Reject("source", Reason::kMissingString);
  if (!has_type) return Reject("type", Reason::kMissingString);
  if (!has_time) return Reject("time", Reason::kMissingString);
  if (!has_data) return Reject("data", Reason::kMissingObject);

  const bool is_agent = out->kind == EntityKind::kAgent;
  const EntityScratch& subject = is_agent ? agent : workflow;
  if (!subject.present)
    return Reject(is_agent ? "data.agent" : "data.workflow", Reason::kMissingObject);
  if (!subject.has_id)
    return Reject(is_agent ? "data.agent.id" : "data.workflow.id", Reason::kMissingId);
  AssignTo(&out->entity_id, subject.id);
  AssignTo(&out->entity_name, subject.name);
  AssignTo(&out->entity_visibility, subject.visibility);
  AssignTo(&out->entity_owner_user_id, subject.owner_user_id);
  return Ok();
}

Status EventParser::Impl::CheckTime(std::string_view path, int64_t time_ms) const {
  if (time_ms < limits.min_time_ms) {
    return Reject(path, Reason::kTimeOutOfRange,
                  "before " + FormatRfc3339Seconds(limits.min_time_ms));
  }
  const int64_t now = limits.clock != nullptr ? limits.clock->NowMillis() : Clock().NowMillis();
  int64_t latest;
  if (__builtin_add_overflow(now, limits.max_future_ms, &latest)) latest = INT64_MAX;
  if (time_ms > latest) {
    return Reject(
        path, Reason::kTimeOutOfRange,
        "more than " + std::to_string(limits.max_future_ms / 1000) + " s after the current time");
  }
  return Ok();
}

Status EventParser::Impl::ParseData(od::value& v, UsageEvent* out, bool* present) {
  od::object obj;
  TALLY_EVENT_TRY(ReadObject(v, "data", &obj, present));
  if (!*present) return Ok();
  bool has_workspace = false, has_user = false, unused = false;
  TALLY_EVENT_TRY(ForEachField<kDataKeys>(
      obj, "data", 2, [&](size_t key, od::value& v, std::string_view path) -> Status {
        switch (key) {
          case kWorkspaceId:
            return ReadString(v, path, kMaxIdBytes, true, &out->workspace_id, &has_workspace);
          case kOrganizationId:
            return ReadString(v, path, kMaxIdBytes, false, &out->organization_id, &unused);
          case kProjectId:
            return ReadString(v, path, kMaxIdBytes, false, &out->project_id, &unused);
          case kUser:
            return ParseUser(v, out, &has_user);
          case kAgent:
            return ParseEntity<kAgentKeys>(v, &agent);
          case kWorkflow:
            return ParseEntity<kWorkflowKeys>(v, &workflow);
          case kDurationMs:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->duration_ms);
          case kTokens:
            return ReadCount(v, path, &out->tokens);
          case kCostUsd:
            return ReadAmount(v, path, kMaxCostUsd, kMaxCostDetail, &out->cost_usd);
          case kMessageCredits:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->message_credits);
          case kIntegrationCredits:
            return ReadAmount(v, path, static_cast<double>(kMaxCount), kMaxCountDetail,
                              &out->integration_credits);
          case kStatus:
            return ReadString(v, path, kMaxTextBytes, false, &out->status, &unused);
        }
        return Ok();
      }));
  if (!has_workspace) return Reject("data.workspace_id", Reason::kMissingString);
  if (!has_user) return Reject("data.user", Reason::kMissingObject);
  return Ok();
}

Status EventParser::Impl::ParseUser(od::value& v, UsageEvent* out, bool* present) {
  od::object obj;
  TALLY_EVENT_TRY(ReadObject(v, "data.user", &obj, present));
  if (!*present) return Ok();
  bool has_id = false, unused = false;
  TALLY_EVENT_TRY(ForEachField<kUserKeys>(
      obj, "data.user", 3, [&](size_t key, od::value& v, std::string_view path) -> Status {
        switch (key) {
          case kUserId:
            return ReadId(v, path, true, &out->user_id, &has_id);
          case kUserName:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_name, &unused);
          case kUserEmail:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_email, &unused);
          case kUserPhoto:
            return ReadString(v, path, kMaxTextBytes, false, &out->user_photo, &unused);
        }
        return Ok();
      }));
  if (!has_id) return Reject("data.user.id", Reason::kMissingId);
  return Ok();
}

template <const auto& kKeys>
Status EventParser::Impl::ParseEntity(od::value& v, EntityScratch* e) {
  // kKeys[0].path is "data.<kind>.id": the object's own path is its prefix.
  constexpr std::string_view path = kKeys[0].path.substr(0, kKeys[0].path.size() - 3);
  od::object obj;
  // A second data.agent/data.workflow key never gets here: ForEachField rejects duplicates.
  TALLY_EVENT_TRY(ReadObject(v, path, &obj, &e->present));
  if (!e->present) return Ok();
  bool unused = false;
  return ForEachField<kKeys>(
      obj, path, 3, [&](size_t key, od::value& v, std::string_view field) -> Status {
        switch (key) {
          case kEntityId:
            return ReadId(v, field, true, &e->id, &e->has_id);
          case kEntityName:
            return ReadString(v, field, kMaxTextBytes, false, &e->name, &unused);
          case kEntityVisibility: {
            std::string_view s;
            bool has_visibility = false;
            TALLY_EVENT_TRY(ReadStringView(v, field, &s, &has_visibility));
            if (!has_visibility) return Ok();
            if (!IsVisibility(s)) return Reject(field, Reason::kBadVisibility);
            AssignTo(&e->visibility, s);
            return Ok();
          }
          case kEntityOwner:
            return ReadId(v, field, false, &e->owner_user_id, &unused);
        }
        return Ok();
      });
}

EventParser::EventParser(const Limits& limits) : impl_(std::make_unique<Impl>(limits)) {}
EventParser::~EventParser() = default;
EventParser::EventParser(EventParser&&) noexcept = default;
EventParser& EventParser::operator=(EventParser&&) noexcept = default;

Status EventParser::ParseInto(std::string_view json, UsageEvent* out) {
  return impl_->Run(json, out);
}

void EventParser::set_limits(const Limits& limits) { impl_->limits = limits; }
const Limits& EventParser::limits() const { return impl_->limits; }

Result<int64_t> ParseDurationMillis(std::string_view text) {
  auto bad = [&] {
    return Fail(ErrorCode::kInvalidArgument,
                "not a duration (a non-negative integer and a unit: ms, s, m, h or d; e.g. 1h, "
                "30m, 3600s)");
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return bad();
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (ec != std::errc() || ptr != text.data() + digits) return bad();
  const std::string_view unit = text.substr(digits);
  int64_t scale;
  if (unit == "ms") {
    scale = 1;
  } else if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return bad();
  }
  int64_t ms;
  if (__builtin_mul_overflow(n, scale, &ms)) return bad();
  return ms;
}

Result<Limits> LimitsFromFlags(std::string_view min_event_time, std::string_view max_future,
                               const Clock* clock) {
  Result<int64_t> min = ParseRfc3339Millis(min_event_time);
  if (!min) {
    return Fail(ErrorCode::kInvalidArgument,
                "--min-event-time: " + min.error().message + " (example: 2000-01-01T00:00:00Z)",
                "min_event_time");
  }
  Result<int64_t> future = ParseDurationMillis(max_future);
  if (!future) {
    return Fail(ErrorCode::kInvalidArgument, "--max-future: " + future.error().message,
                "max_future");
  }
  return Limits{.min_time_ms = *min, .max_future_ms = *future, .clock = clock};
}

Result<UsageEvent> EventParser::Parse(std::string_view json) {
  UsageEvent event;
  if (Status s = impl_->Run(json, &event); !s) return std::unexpected(std::move(s.error()));
  return event;
}

}  // namespace tally::event
