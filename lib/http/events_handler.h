#pragma once
// POST /v1/events: usage events over HTTP, for producers without a Kafka client. Each event is
// validated by the same parser as ingest (event/event_parser.h) and published to the usage-events
// topic through an injected backend; the answer comes only after the broker acknowledged them.
//
//   tally::http::EventsBackend backend{
//       .publish = [&](std::span<const tally::http::EventMessage> events) {
//         std::vector<tally::kafka::OutMessage> out;
//         for (const auto& e : events) out.push_back({.key = e.key, .value = e.value});
//         return producer->ProduceAndWait("usage-events", out, 10000);
//       }};
//   auto handler = std::make_shared<const tally::http::EventsHandler>(keys, backend,
//                                                                     options, &registry);
//   router.Add("POST", "/v1/events",
//              [handler](const tally::http::Request& r) { return handler->Handle(r); });
//
// Content types (parameters ignored except `charset`, which must be utf-8 when present):
//   application/cloudevents+json        one CloudEvents structured-mode JSON object
//   application/cloudevents-batch+json  a JSON array of them (may be empty)
//
// Order of checks, each answered with a JSON body:
//   401 no/unknown token (Bearer or api_key) ->
//   415 another content type {"message","accepted":[...]} ->
//   413 body over options.max_body_bytes, or a batch of more than options.max_events ->
//   400 a batch that is not a JSON array {"message","errors":[]}, or any invalid event
//       {"message","errors":[{"index","field","reason","category"}]} (every invalid event is
//       listed; index 0 for the single-event type), including values above their maximum
//       (category "out_of_range"), times outside options.event_limits ("time_out_of_range",
//       field "time") and an event naming another organization than the one its workspace is
//       declared to belong to in the keys file ("organization_mismatch") ->
//   403 any event writing into a scope the key does not hold: its workspace (owner or member
//       role) or the organization it names (an admin key holds all)
//       {"message","errors":[{"index","field":"data.workspace_id"|"data.organization_id",
//       "reason"}]} ->
//   503 too many publishing requests at once (options.max_concurrent_publishes), Retry-After ->
//   503 the backend holds publishing back (backend.admit: the embedded broker would trim events
//       not yet consumed), Retry-After, nothing published, {"message"} saying why ->
//   503 the backend failed (broker down, not acknowledged in time), Retry-After ->
//   202 {"accepted": N}.
// All-or-nothing: on any 4xx nothing is published, so a client fixes the request and sends it
// again whole. A 503 may follow a partial publish; sending the same request again is safe because
// ingest drops repeats of (source, id).
//
// What is published is exactly the producer's JSON text of each event (a batch is split into
// the raw text of its elements; surrounding whitespace is dropped), one message per event, in
// request order, with key = data.workspace_id.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "event/event_parser.h"
#include "http/auth.h"
#include "http/router.h"

namespace tally::http {

inline constexpr std::string_view kCloudEventMediaType = "application/cloudevents+json";
inline constexpr std::string_view kCloudEventBatchMediaType = "application/cloudevents-batch+json";

// One validated event to publish. The views point into the request body.
struct EventMessage {
  std::string_view key;    // data.workspace_id (unescaped)
  std::string_view value;  // the event's JSON text as sent
};

struct EventsBackend {
  // Publishes `events` in order and returns Ok only once the broker has acknowledged every one;
  // any error becomes a 503 (details are logged, not sent). Required; must be thread-safe.
  std::function<Status(std::span<const EventMessage>)> publish;
  // Asked before publishing `messages` events of `bytes` in all (values and keys): Ok to go on,
  // or an error whose message is sent to the client with a 503 and Retry-After (nothing is
  // published). Optional; must be thread-safe. tallyd sets kafka::RetentionGuard::Admit.
  std::function<Status(size_t bytes, size_t messages)> admit;
};

struct EventsOptions {
  size_t max_body_bytes = 1 << 20;   // 413 above (the server's own limit may be lower)
  size_t max_events = 1000;          // per batch; 413 above
  int max_concurrent_publishes = 0;  // requests waiting for the broker at once; 0 = unlimited
  // Event time bounds, as ingest applies them (tallyd --min-event-time, --max-future): an event
  // outside is invalid (400, category "time_out_of_range"). `event_limits.clock`, if set, must
  // outlive the handler.
  event::Limits event_limits;
};

class EventsHandler {
 public:
  // `keys` must be non-null and `backend.publish` set. `metrics` may be null; otherwise it must
  // outlive the handler and gets tally_http_events_published_total,
  // tally_http_events_rejected_total{reason} (reason "held_back" for backend.admit refusals) and
  // tally_http_events_publish_failed_total.
  EventsHandler(std::shared_ptr<const KeyStore> keys, EventsBackend backend, EventsOptions options,
                MetricsRegistry* metrics = nullptr);

  // Thread-safe (one event parser per calling thread). Never throws on bad input.
  Response Handle(const Request& request) const;

 private:
  // Handle's steps, in order; each returns the response that ends the request, or nullopt to
  // go on. The body's events' texts (by Content-Type: 415, 413, 400 on a malformed batch).
  std::optional<Response> SplitBody(const Request& request,
                                    std::vector<std::string_view>* texts) const;
  // Parses every event (400 naming each invalid one); fills each event's workspace and
  // organization ("" for an invalid event).
  std::optional<Response> Validate(const ApiKey& key, std::span<const std::string_view> texts,
                                   std::vector<std::string>* workspaces,
                                   std::vector<std::string>* organizations) const;
  // 403 naming each event whose workspace or organization `key` does not hold.
  std::optional<Response> Authorize(const ApiKey& key, const std::vector<std::string>& workspaces,
                                    const std::vector<std::string>& organizations) const;
  // Publishes the events (503 with Retry-After when refused or failed).
  std::optional<Response> Publish(std::span<const std::string_view> texts,
                                  const std::vector<std::string>& workspaces) const;

  std::shared_ptr<const KeyStore> keys_;
  EventsBackend backend_;
  EventsOptions options_;
  MetricsRegistry* metrics_;
  Counter* published_ = nullptr;
  Counter* publish_failed_ = nullptr;
  mutable std::atomic<int> publishing_{0};
};

// The raw JSON text of each element of the JSON array `text`, without surrounding whitespace, in
// order. Only the array's own structure is checked (brackets, strings, commas); the elements'
// contents are left to their parser. kInvalidArgument (field "$", message naming the byte
// offset) when `text` is not an array, an element is empty or content follows the array;
// kResourceExhausted as soon as there are more than `max_elements` elements. Pure.
Result<std::vector<std::string_view>> SplitJsonArray(std::string_view text, size_t max_elements);

}  // namespace tally::http
