#pragma once
// The one result type of tally's libraries.
//
//   tally::Result<int> ParsePort(std::string_view s) {
//     if (s.empty()) return tally::Fail(tally::ErrorCode::kInvalidArgument, "empty port", "port");
//     return 8080;
//   }
//   auto port = ParsePort(text);
//   if (!port) LOG(port.error().message);
//
// No function of lib/ throws across its API: failures travel as Result<T>. The mapping of
// ErrorCode to HTTP status lives in one place (lib/http/error_mapping.h).

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace tally {

enum class ErrorCode {
  kInvalidArgument,     // malformed input: a request parameter, an event, a flag (HTTP 422/400)
  kUnauthenticated,     // missing or unknown credentials (HTTP 401)
  kPermissionDenied,    // known credentials without the right (HTTP 403)
  kNotFound,            // an unknown workspace or resource (HTTP 404)
  kFailedPrecondition,  // the system is not in a state to do this (HTTP 409/503)
  kResourceExhausted,   // a limit was hit: body size, span of a range (HTTP 413/400)
  kUnavailable,         // a dependency (broker, disk) is unavailable (HTTP 503)
  kDataLoss,            // stored or logged data is gone or corrupt
  kInternal,            // a bug or an unexpected library failure (HTTP 500)
};

// Human-readable name of `code`, e.g. "invalid_argument". Never null.
const char* ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // complete sentence for humans, e.g. "The entity field is required."
  std::string field;    // the input field at fault, or empty
};

template <typename T>
using Result = std::expected<T, Error>;

// Result of an operation without a value.
using Status = std::expected<void, Error>;

// Builds the error side of a Result: `return Fail(ErrorCode::kNotFound, "no such workspace");`
inline std::unexpected<Error> Fail(ErrorCode code, std::string message, std::string field = {}) {
  return std::unexpected<Error>(Error{code, std::move(message), std::move(field)});
}

inline Status Ok() { return {}; }

}  // namespace tally
