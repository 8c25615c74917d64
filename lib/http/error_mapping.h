#pragma once
// The ONE place where tally errors become HTTP statuses and error bodies.
//
//   tally::Result<Foo> r = DoSomething();
//   if (!r) return tally::http::ErrorResponse(r.error());   // e.g. 404 {"message": "..."}
//   return tally::http::UnauthenticatedResponse();          // 401 {"message": "Unauthenticated."}
//
// Generic error body: {"message": "...", "field": "..."} ("field" only when known). Contracts
// with their own shapes (the Laravel 422, the workspace 404) have dedicated builders here.
// All functions are pure and thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/router.h"

namespace tally::http {

// One failed validation rule: `field` as the API names it ("filters.period"), `message` a
// complete sentence ("The selected entity is invalid.").
struct FieldError {
  std::string field;
  std::string message;
};
using FieldErrors = std::vector<FieldError>;

// kInvalidArgument 422, kUnauthenticated 401, kPermissionDenied 403, kNotFound 404,
// kFailedPrecondition 503, kResourceExhausted 400, kUnavailable 503, kDataLoss 500,
// kInternal 500.
int HttpStatusFor(ErrorCode code);

// Generic body with the status of HttpStatusFor(error.code). For 500s the message is replaced by
// "Internal server error." (details are logged, never sent to clients).
Response ErrorResponse(const Error& error);

// 401 {"message": "Unauthenticated."} with WWW-Authenticate: Bearer.
Response UnauthenticatedResponse();
// 403 {"message": "This action is unauthorized."}
Response ForbiddenResponse();
// 404 {"error": "Workspace not found"} (schemas/openapi.yaml).
Response WorkspaceNotFoundResponse();
// 422 in Laravel's shape: {"message": "<first> (and N more error(s))", "errors": {field: [..]}}.
// Fields appear in the order of their first error; `errors` must not be empty.
Response ValidationErrorResponse(const FieldErrors& errors);
// Laravel's summary line for `errors` (the "message" of ValidationErrorResponse).
std::string ValidationSummary(const FieldErrors& errors);
// ValidationErrorResponse's shape with another status and message, e.g. 400 for a request that
// validates but names something that cannot be used (an expired cursor).
Response FieldErrorsResponse(int status, std::string_view message, const FieldErrors& errors);

// One rejected item of a batch request (POST /v1/events): its 0-based index in the request, the
// field at fault ("data.user.id"; "$" for the item as a whole), a reason sentence, and a stable
// category ("missing_field", see event/event_parser.h ReasonCategory; may be empty).
struct ItemError {
  size_t index = 0;
  std::string field;
  std::string reason;
  std::string category;  // left out of the body when empty
};
using ItemErrors = std::vector<ItemError>;

// 400 {"message": message, "errors": [{"index","field","reason"[,"category"]}]}: items that
// failed validation (`errors` is empty when the body as a whole is malformed).
Response InvalidItemsResponse(std::string_view message, const ItemErrors& errors);
// 403 {"message": "This action is unauthorized.", "errors": [...]}: the items the key may not
// write (as InvalidItemsResponse).
Response ForbiddenItemsResponse(const ItemErrors& errors);
// 413 {"message": message}: an endpoint's own limit (bytes of a body, items per request).
Response TooLargeResponse(std::string_view message);
// 415 {"message": ..., "accepted": [...]}, naming the media types the endpoint accepts.
Response UnsupportedMediaTypeResponse(const std::vector<std::string>& accepted);

// Router and transport errors (generic body).
Response RouteNotFoundResponse();                           // 404 "Not found."
Response MethodNotAllowedResponse(std::string_view allow);  // 405 + Allow header
Response PayloadTooLargeResponse(size_t limit_bytes);       // 413
Response HeaderTooLargeResponse(size_t limit_bytes);        // 431
Response BadRequestResponse(std::string_view message);      // 400
Response InternalErrorResponse();                           // 500 "Internal server error."

}  // namespace tally::http
