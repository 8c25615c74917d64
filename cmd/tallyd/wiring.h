#pragma once
// tallyd's components and the steps that build them, in startup order (main.cpp calls them one
// after another; each step needs the ones before it):
//
//   CheckFlags -> OpenDataDir -> StartEmbeddedBroker -> OpenLiveViews -> ConfigureIngest ->
//   JoinGroup -> CreateConsumer -> WireQueries -> WireHttpIngest -> StartHttpServer
//
// A step that fails logs why (or, for a bad flag value, says it on stderr) and returns the exit
// status: 1 for a startup failure, cli::kUsageExit (2) for a bad flag value.

#include <memory>
#include <optional>

#include "common/clock.h"
#include "common/metrics.h"
#include "event/event_parser.h"
#include "http/auth.h"
#include "http/server.h"
#include "http/service.h"
#include "ingest/consumer.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "kafka/retention_guard.h"
#include "store/store.h"
#include "tallyd/cluster_wiring.h"
#include "tallyd/flags.h"
#include "tallyd/live_views.h"

namespace tally::tallyd {

// nullopt: go on; else the process exits with this status.
using ExitStatus = std::optional<int>;

// What a running tallyd is made of. Members are declared in the order they are built, so they
// are destroyed in reverse: the server first, the embedded broker last. Not movable (the
// router's functions point into it).
struct Tallyd {
  Clock clock;  // --now, or real time
  event::Limits event_limits;
  http::ServerOptions server_options;
  std::optional<http::KeyStore> keys;             // until WireQueries hands it to the router
  std::unique_ptr<kafka::EmbeddedBroker> broker;  // null with --brokers HOST:PORT
  store::StoreOptions store_options;
  std::unique_ptr<LiveViews> live;
  std::shared_ptr<const LiveViews::Views> first;  // the views ingest starts on, until it has
  MetricsRegistry registry;
  ingest::ConsumerOptions consumer_options;
  std::unique_ptr<ClusterParts> cluster;  // null for a single instance
  std::unique_ptr<ingest::Consumer> consumer;
  http::ServiceDeps deps;  // moved into the router by StartHttpServer
  // POST /v1/events: one shared idempotent producer and its hold-back (--http-ingest).
  std::unique_ptr<kafka::Producer> ingest_producer;
  std::unique_ptr<kafka::RetentionGuard> retention_guard;
  std::shared_ptr<const http::Router> router;
  std::unique_ptr<http::Server> server;

  Tallyd() = default;
  Tallyd(const Tallyd&) = delete;
  Tallyd& operator=(const Tallyd&) = delete;
};

// The clock (--now), event time bounds (--min-event-time, --max-future) and HTTP server options
// (--listen, --http-threads, the body limit of --http-ingest-max-bytes). Usage errors only.
ExitStatus CheckFlags(const Flags& flags, Tallyd* t);
// Creates --data-dir and loads the --keys file.
ExitStatus OpenDataDir(const Flags& flags, Tallyd* t);
// With --brokers embedded (or empty): starts the in-process broker with the topic, its
// dead-letter topic and the cluster topic, writes its address to <data-dir>/broker.addr and
// points flags->brokers at it.
ExitStatus StartEmbeddedBroker(Flags* flags, Tallyd* t);
// Seeds the data directory from --from-snapshot if asked, then opens its live store.
ExitStatus OpenLiveViews(const Flags& flags, Tallyd* t);
// The consumer's options from the flags, the keys file's organizations and
// <data-dir>/instance.id (created for --instance-id auto).
ExitStatus ConfigureIngest(const Flags& flags, Tallyd* t);
// With --advertise-url: joins the group of instances (cluster_wiring.h), which also sets the
// consumer's group options.
ExitStatus JoinGroup(const Flags& flags, Tallyd* t);
// Creates the consumer on the live store and attaches it to the live views and the group.
ExitStatus CreateConsumer(Tallyd* t);
// The query, admin and readiness backends of the HTTP API, reading the live views.
void WireQueries(const Flags& flags, Tallyd* t);
// With --http-ingest: POST /v1/events, published to --topic.
ExitStatus WireHttpIngest(const Flags& flags, Tallyd* t);
// Routes through the group (if any), builds the router, listens, and writes --port-file.
ExitStatus StartHttpServer(const Flags& flags, Tallyd* t);

}  // namespace tally::tallyd
