#include "http/admin_handler.h"

#include <simdjson.h>

#include "common/json_writer.h"
#include "http/error_mapping.h"

namespace tally::http {

AdminHandler::AdminHandler(std::shared_ptr<const KeyStore> keys, AdminBackend backend)
    : keys_(std::move(keys)), backend_(std::move(backend)) {}

std::variant<std::string, Response> AdminHandler::Field(const Request& request,
                                                        const char* field) const {
  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();
  if (!key->admin) return ForbiddenResponse();
  const std::string name(field);
  auto invalid = [&](std::string message) {
    return ValidationErrorResponse({FieldError{name, std::move(message)}});
  };
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(request.body).get(doc) || !doc.is_object()) {
    return ValidationErrorResponse({FieldError{"body", "The request body must be a JSON object."}});
  }
  std::string_view value;
  simdjson::dom::element e;
  if (doc[field].get(e)) return invalid("The " + name + " field is required.");
  if (e.get_string().get(value) || value.empty()) {
    return invalid("The " + name + " field must be a non-empty string.");
  }
  return std::string(value);
}

Response AdminHandler::Switch(const Request& request) const {
  auto db = Field(request, "db");
  if (auto* r = std::get_if<Response>(&db)) return *r;
  const std::string& name = std::get<std::string>(db);
  Result<bool> done = backend_.switch_db(name);
  if (!done) {
    if (done.error().code == ErrorCode::kInvalidArgument) {
      return ValidationErrorResponse({FieldError{"db", done.error().message}});
    }
    return ErrorResponse(done.error());
  }
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("status").String(*done ? "switched" : "catching_up");
  w.Key("db").String(name);
  w.EndObject();
  return JsonResponse(*done ? 200 : 202, body);
}

Response AdminHandler::Snapshot(const Request& request) const {
  auto path = Field(request, "path");
  if (auto* r = std::get_if<Response>(&path)) return *r;
  const std::string& p = std::get<std::string>(path);
  if (Status s = backend_.snapshot(p); !s) {
    if (s.error().code == ErrorCode::kInvalidArgument) {
      return ValidationErrorResponse({FieldError{"path", s.error().message}});
    }
    return ErrorResponse(s.error());
  }
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("status").String("created");
  w.Key("path").String(p);
  w.EndObject();
  return JsonResponse(200, body);
}

}  // namespace tally::http
