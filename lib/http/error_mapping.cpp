#include "http/error_mapping.h"

#include <spdlog/spdlog.h>

#include "common/json_writer.h"

namespace tally::http {
namespace {

Response MessageResponse(int status, std::string_view message, std::string_view field = {}) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("message").String(message);
  if (!field.empty()) {
    w.Key("field").String(field);
  }
  w.EndObject();
  return JsonResponse(status, std::move(body));
}

}  // namespace

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 422;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kFailedPrecondition:
      return 503;
    case ErrorCode::kResourceExhausted:
      return 400;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kDataLoss:
      return 500;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

Response ErrorResponse(const Error& error) {
  switch (error.code) {
    case ErrorCode::kUnauthenticated:
      return UnauthenticatedResponse();
    case ErrorCode::kPermissionDenied:
      return ForbiddenResponse();
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      spdlog::error("http: {} error: {}", ErrorCodeName(error.code), error.message);
      return InternalErrorResponse();
    default:
      return MessageResponse(HttpStatusFor(error.code), error.message, error.field);
  }
}

Response UnauthenticatedResponse() {
  Response r = MessageResponse(401, "Unauthenticated.");
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

Response ForbiddenResponse() { return MessageResponse(403, "This action is unauthorized."); }

Response WorkspaceNotFoundResponse() {
  return JsonResponse(404, R"({"error":"Workspace not found"})");
}

std::string ValidationSummary(const FieldErrors& errors) {
  if (errors.empty()) return "The given data was invalid.";
  std::string message = errors.front().message;
  const size_t more = errors.size() - 1;
  if (more > 0) {
    message += " (and " + std::to_string(more) + (more == 1 ? " more error)" : " more errors)");
  }
  return message;
}

Response ValidationErrorResponse(const FieldErrors& errors) {
  return FieldErrorsResponse(422, ValidationSummary(errors), errors);
}

Response FieldErrorsResponse(int status, std::string_view message, const FieldErrors& errors) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("message").String(message);
  w.Key("errors").BeginObject();
  // Group by field, keeping the order of first appearance (errors lists are tiny).
  std::vector<bool> done(errors.size(), false);
  for (size_t i = 0; i < errors.size(); ++i) {
    if (done[i]) continue;
    w.Key(errors[i].field).BeginArray();
    for (size_t j = i; j < errors.size(); ++j) {
      if (!done[j] && errors[j].field == errors[i].field) {
        w.String(errors[j].message);
        done[j] = true;
      }
    }
    w.EndArray();
  }
  w.EndObject();
  w.EndObject();
  return JsonResponse(status, std::move(body));
}

namespace {

Response ItemErrorsResponse(int status, std::string_view message, const ItemErrors& errors) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("message").String(message);
  w.Key("errors").BeginArray();
  for (const ItemError& e : errors) {
    w.BeginObject();
    w.Key("index").Int(static_cast<int64_t>(e.index));
    w.Key("field").String(e.field);
    w.Key("reason").String(e.reason);
    if (!e.category.empty()) {
      w.Key("category").String(e.category);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return JsonResponse(status, std::move(body));
}

}  // namespace

Response InvalidItemsResponse(std::string_view message, const ItemErrors& errors) {
  return ItemErrorsResponse(400, message, errors);
}

Response ForbiddenItemsResponse(const ItemErrors& errors) {
  return ItemErrorsResponse(403, "This action is unauthorized.", errors);
}

Response TooLargeResponse(std::string_view message) { return MessageResponse(413, message); }

Response UnsupportedMediaTypeResponse(const std::vector<std::string>& accepted) {
  std::string message = "Unsupported Content-Type; send ";
  for (size_t i = 0; i < accepted.size(); ++i) {
    if (i > 0) message += i + 1 == accepted.size() ? " or " : ", ";
    message += accepted[i];
  }
  message += ".";
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("message").String(message);
  w.Key("accepted").BeginArray();
  for (const std::string& a : accepted) w.String(a);
  w.EndArray();
  w.EndObject();
  return JsonResponse(415, std::move(body));
}

Response RouteNotFoundResponse() { return MessageResponse(404, "Not found."); }

Response MethodNotAllowedResponse(std::string_view allow) {
  Response r = MessageResponse(405, "Method not allowed.");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

Response PayloadTooLargeResponse(size_t limit_bytes) {
  return MessageResponse(
      413, "The request body is larger than " + std::to_string(limit_bytes) + " bytes.");
}

Response HeaderTooLargeResponse(size_t limit_bytes) {
  return MessageResponse(
      431, "The request headers are larger than " + std::to_string(limit_bytes) + " bytes.");
}

Response BadRequestResponse(std::string_view message) { return MessageResponse(400, message); }

Response InternalErrorResponse() { return MessageResponse(500, "Internal server error."); }

}  // namespace tally::http
