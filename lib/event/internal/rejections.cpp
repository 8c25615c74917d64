#include "event/internal/rejections.h"

namespace tally::event {
namespace internal {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

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

}  // namespace

std::unexpected<Error> Reject(std::string_view field, Reason reason, std::string_view detail) {
  const ReasonInfo& info = kReasons[static_cast<size_t>(reason)];
  std::string message;
  message.reserve(field.size() + info.text.size() + detail.size() + 6);
  message.append(field).append(": ").append(info.text);
  if (!detail.empty()) message.append(" (").append(detail).append(")");
  ErrorCode code = info.category == Category::kTooLarge ? ErrorCode::kResourceExhausted
                                                        : ErrorCode::kInvalidArgument;
  return Fail(code, std::move(message), std::string(field));
}

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

}  // namespace internal

std::string_view ReasonCategory(const Error& error) {
  std::string_view m = error.message;
  if (!m.starts_with(error.field) || m.substr(error.field.size(), 2) != ": ") return "other";
  m.remove_prefix(error.field.size() + 2);
  if (size_t paren = m.find(" ("); paren != std::string_view::npos) m = m.substr(0, paren);
  for (const internal::ReasonInfo& r : internal::kReasons) {
    if (r.text == m) return internal::kCategoryNames[static_cast<size_t>(r.category)];
  }
  return "other";
}

// The message is not an object: say whether it is JSON of another type or not JSON at all.

}  // namespace tally::event
