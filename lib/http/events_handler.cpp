#include "http/events_handler.h"

#include <spdlog/spdlog.h>

#include "common/json_writer.h"
#include "common/strings.h"
#include "event/event_parser.h"
#include "event/usage_event.h"
#include "http/error_mapping.h"

namespace tally::http {
namespace {

constexpr const char* kRejectedHelp =
    "Events of POST /v1/events rejected (nothing of their request is published), by reason.";

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

enum class BodyKind { kUnsupported, kSingle, kBatch };

// The kind of body a Content-Type announces: the media type (case-insensitive), with an optional
// charset parameter that must be utf-8 (CloudEvents JSON is UTF-8); other parameters are ignored.
BodyKind KindOf(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  std::string type = AsciiLower(TrimBlanks(media));
  std::string_view params =
      media.size() < content_type.size() ? content_type.substr(media.size() + 1) : "";
  while (!params.empty()) {
    size_t end = params.find(';');
    std::string_view param = TrimBlanks(params.substr(0, end));
    params = end == std::string_view::npos ? "" : params.substr(end + 1);
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (AsciiLower(TrimBlanks(param.substr(0, eq))) != "charset") continue;
    std::string value = AsciiLower(TrimBlanks(param.substr(eq + 1)));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (value != "utf-8" && value != "utf8") return BodyKind::kUnsupported;
  }
  if (type == kCloudEventMediaType) return BodyKind::kSingle;
  if (type == kCloudEventBatchMediaType) return BodyKind::kBatch;
  return BodyKind::kUnsupported;
}

// "data.user.id: required string is missing" -> "required string is missing".
std::string ReasonOf(const Error& e) {
  std::string_view m = e.message;
  if (!e.field.empty() && m.size() > e.field.size() + 2 && m.starts_with(e.field) &&
      m.substr(e.field.size(), 2) == ": ") {
    m.remove_prefix(e.field.size() + 2);
  }
  return std::string(m);
}

std::string CountOf(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

Response RetryLater(Response r) {
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace

Result<std::vector<std::string_view>> SplitJsonArray(std::string_view text, size_t max_elements) {
  auto malformed = [](std::string_view what, size_t at) {
    return Fail(ErrorCode::kInvalidArgument,
                "The body is not a JSON array of events: " + std::string(what) + " at byte " +
                    std::to_string(at) + ".",
                "$");
  };
  const size_t n = text.size();
  size_t i = 0;
  auto skip_space = [&] {
    while (i < n && IsJsonSpace(text[i])) ++i;
  };
  skip_space();
  if (i == n || text[i] != '[') return malformed("expected '['", i);
  ++i;
  skip_space();
  std::vector<std::string_view> elements;
  std::string open;  // brackets opened inside the current element
  if (i < n && text[i] == ']') {
    ++i;
  } else {
    for (;;) {
      const size_t start = i;
      bool end_of_array = false;
      while (i < n) {
        const char c = text[i];
        if (c == '"') {
          for (++i; i < n && text[i] != '"'; ++i) {
            if (text[i] == '\\') ++i;  // the escaped character cannot end the string
          }
          if (i >= n) return malformed("unterminated string", start);
          ++i;
          continue;
        }
        if (c == '{' || c == '[') {
          open.push_back(c);
        } else if (c == '}' || c == ']') {
          if (open.empty()) {
            if (c == '}') return malformed("unexpected '}'", i);
            end_of_array = true;
            break;
          }
          if ((open.back() == '{') != (c == '}')) return malformed("mismatched bracket", i);
          open.pop_back();
        } else if (c == ',' && open.empty()) {
          break;
        }
        ++i;
      }
      if (i >= n) return malformed("unterminated array", n);
      std::string_view element = TrimWhitespace(text.substr(start, i - start));
      if (element.empty()) return malformed("missing element", i);
      if (elements.size() == max_elements) {
        return Fail(ErrorCode::kResourceExhausted,
                    "A batch holds at most " + std::to_string(max_elements) + " events.", "$");
      }
      elements.push_back(element);
      ++i;  // past ',' or ']'
      if (end_of_array) break;
      skip_space();
    }
  }
  skip_space();
  if (i != n) return malformed("content after the array", i);
  return elements;
}

EventsHandler::EventsHandler(std::shared_ptr<const KeyStore> keys, EventsBackend backend,
                             EventsOptions options, MetricsRegistry* metrics)
    : keys_(std::move(keys)), backend_(std::move(backend)), options_(options), metrics_(metrics) {
  if (metrics_ != nullptr) {
    published_ = metrics_->GetCounter("tally_http_events_published_total",
                                      "Events received on POST /v1/events and acknowledged by "
                                      "the broker.");
    publish_failed_ = metrics_->GetCounter(
        "tally_http_events_publish_failed_total",
        "Events of POST /v1/events requests answered 503 (publishing failed or timed out).");
  }
}

Response EventsHandler::Handle(const Request& request) const {
  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();

  std::vector<std::string_view> texts;
  if (auto refused = SplitBody(request, &texts)) return std::move(*refused);
  std::vector<std::string> workspaces, organizations;
  if (auto refused = Validate(*key, texts, &workspaces, &organizations)) {
    return std::move(*refused);
  }
  if (auto refused = Authorize(*key, workspaces, organizations)) return std::move(*refused);
  if (!texts.empty()) {
    if (auto refused = Publish(texts, workspaces)) return std::move(*refused);
  }

  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("accepted").Int(static_cast<int64_t>(texts.size()));
  w.EndObject();
  return JsonResponse(202, std::move(body));
}

std::optional<Response> EventsHandler::SplitBody(const Request& request,
                                                 std::vector<std::string_view>* texts) const {
  static const std::vector<std::string> kAccepted = {std::string(kCloudEventMediaType),
                                                     std::string(kCloudEventBatchMediaType)};
  const BodyKind kind = KindOf(request.Header("Content-Type"));
  if (kind == BodyKind::kUnsupported) return UnsupportedMediaTypeResponse(kAccepted);

  if (request.body.size() > options_.max_body_bytes) {
    return TooLargeResponse("The request body is larger than " +
                            std::to_string(options_.max_body_bytes) + " bytes.");
  }

  if (kind == BodyKind::kSingle) {
    texts->push_back(TrimWhitespace(request.body));
    return std::nullopt;
  }
  auto split = SplitJsonArray(request.body, options_.max_events);
  if (!split) {
    if (split.error().code == ErrorCode::kResourceExhausted) {
      return TooLargeResponse(split.error().message);
    }
    return InvalidItemsResponse(split.error().message + " Nothing was published.", {});
  }
  *texts = std::move(*split);
  return std::nullopt;
}

std::optional<Response> EventsHandler::Validate(const ApiKey& key,
                                                std::span<const std::string_view> texts,
                                                std::vector<std::string>* workspaces,
                                                std::vector<std::string>* organizations) const {
  // The same parser as ingest: what is accepted here is exactly what ingest would count.
  thread_local event::EventParser parser;
  thread_local event::UsageEvent event;
  parser.set_limits(options_.event_limits);
  workspaces->reserve(texts.size());
  organizations->reserve(texts.size());
  ItemErrors invalid;
  const auto& declared = keys_->organizations();
  for (size_t i = 0; i < texts.size(); ++i) {
    Status st = parser.ParseInto(texts[i], &event);
    if (!st) {
      invalid.push_back({.index = i,
                         .field = st.error().field,
                         .reason = ReasonOf(st.error()),
                         .category = std::string(event::ReasonCategory(st.error()))});
      workspaces->emplace_back();
      organizations->emplace_back();
      continue;
    }
    // A workspace bound up front (keys file) takes events of its organization only; bindings
    // made by earlier events are enforced by ingest (dead letter "organization mismatch"). Only
    // a key holding the workspace learns of its binding: for others the event is a 403 below,
    // whatever organization it names.
    if (!event.organization_id.empty() && (key.admin || key.IsMember(event.workspace_id))) {
      auto bound = declared.find(event.workspace_id);
      if (bound != declared.end() && bound->second != event.organization_id) {
        invalid.push_back({.index = i,
                           .field = "data.organization_id",
                           .reason = "organization mismatch: the workspace belongs to another "
                                     "organization.",
                           .category = "organization_mismatch"});
      }
    }
    workspaces->push_back(event.workspace_id);
    organizations->push_back(event.organization_id);
  }
  if (invalid.empty()) return std::nullopt;
  if (metrics_ != nullptr) {
    for (const ItemError& e : invalid) {
      metrics_
          ->GetCounter("tally_http_events_rejected_total", kRejectedHelp, {{"reason", e.category}})
          ->Add();
    }
  }
  return InvalidItemsResponse(CountOf(invalid.size(), "event is", "events are") + " invalid (of " +
                                  CountOf(texts.size(), "event", "events") +
                                  "); nothing was published.",
                              invalid);
}

std::optional<Response> EventsHandler::Authorize(
    const ApiKey& key, const std::vector<std::string>& workspaces,
    const std::vector<std::string>& organizations) const {
  if (key.admin) return std::nullopt;
  ItemErrors forbidden;
  // An event writes into its workspace and into the organization it names: the key must hold
  // both.
  for (size_t i = 0; i < workspaces.size(); ++i) {
    if (!key.IsMember(workspaces[i])) {
      forbidden.push_back({.index = i,
                           .field = "data.workspace_id",
                           .reason = "The API key does not hold this workspace; nothing was "
                                     "published.",
                           .category = {}});
    } else if (!organizations[i].empty() && !key.HoldsOrganization(organizations[i])) {
      forbidden.push_back({.index = i,
                           .field = "data.organization_id",
                           .reason = "The API key does not hold this organization; nothing was "
                                     "published.",
                           .category = {}});
    }
  }
  if (forbidden.empty()) return std::nullopt;
  if (metrics_ != nullptr) {
    metrics_
        ->GetCounter("tally_http_events_rejected_total", kRejectedHelp, {{"reason", "forbidden"}})
        ->Add(static_cast<double>(forbidden.size()));
  }
  return ForbiddenItemsResponse(forbidden);
}

std::optional<Response> EventsHandler::Publish(std::span<const std::string_view> texts,
                                               const std::vector<std::string>& workspaces) const {
  const int limit = options_.max_concurrent_publishes;
  if (limit > 0 && publishing_.fetch_add(1) >= limit) {
    publishing_.fetch_sub(1);
    return RetryLater(
        ErrorResponse({ErrorCode::kUnavailable,
                       "Too many event requests are waiting for the broker; retry shortly.",
                       {}}));
  }
  struct Release {
    std::atomic<int>* counter;
    ~Release() {
      if (counter != nullptr) counter->fetch_sub(1);
    }
  } release{limit > 0 ? &publishing_ : nullptr};
  std::vector<EventMessage> messages;
  messages.reserve(texts.size());
  size_t bytes = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    messages.push_back({workspaces[i], texts[i]});
    bytes += workspaces[i].size() + texts[i].size();
  }
  if (backend_.admit) {
    Status admitted = backend_.admit(bytes, texts.size());
    if (!admitted) {
      if (metrics_ != nullptr) {
        metrics_
            ->GetCounter("tally_http_events_rejected_total", kRejectedHelp,
                         {{"reason", "held_back"}})
            ->Add(static_cast<double>(texts.size()));
      }
      return RetryLater(ErrorResponse({ErrorCode::kUnavailable,
                                       admitted.error().message +
                                           " Nothing was published; send the same request again "
                                           "after the Retry-After delay.",
                                       {}}));
    }
  }
  Status published = backend_.publish(messages);
  if (!published) {
    spdlog::warn("POST /v1/events: publishing {} events failed: {}", texts.size(),
                 published.error().message);
    if (publish_failed_ != nullptr) publish_failed_->Add(static_cast<double>(texts.size()));
    return RetryLater(ErrorResponse(
        {ErrorCode::kUnavailable,
         "The events could not be published (the event log did not acknowledge them in time); "
         "some may have been. Sending the same request again is safe: events are deduplicated "
         "by source and id.",
         {}}));
  }
  if (published_ != nullptr) published_->Add(static_cast<double>(texts.size()));
  return std::nullopt;
}

}  // namespace tally::http
