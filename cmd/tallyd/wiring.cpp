#include "tallyd/wiring.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_flags.h"
#include "cluster/forwarder.h"
#include "common/allocator.h"
#include "common/calendar.h"
#include "common/json_writer.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "query/leaderboard.h"
#include "query/requests.h"
#include "query/superagents.h"
#include "query/workspace_metrics.h"
#include "store/data_dir.h"

namespace tally::tallyd {
namespace {

// Writes `text` to `path` atomically (temp file + rename), so readers never see half of it.
bool WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int Die(const std::string& message) {
  spdlog::critical("{}", message);
  return 1;
}

// A flag's value is wrong: said on stderr, exit status 2 (as CLI11's own usage errors).
int Usage(const std::string& message) {
  std::fprintf(stderr, "%s\nRun with --help for more information.\n", message.c_str());
  return cli::kUsageExit;
}

// Copies a snapshot (a RocksDB checkpoint) into <data_dir>/db unless a store is already there.
Status SeedFromSnapshot(const std::string& snapshot, const std::string& data_dir) {
  const std::filesystem::path live =
      std::filesystem::path(data_dir) / store::CurrentDbName(data_dir);
  if (std::filesystem::exists(live / "CURRENT")) {
    spdlog::warn("--from-snapshot ignored: {} already holds a store", live.string());
    return Ok();
  }
  if (!std::filesystem::exists(std::filesystem::path(snapshot) / "CURRENT")) {
    return Fail(ErrorCode::kNotFound,
                "--from-snapshot: " + snapshot + " is not a snapshot (no CURRENT file)");
  }
  std::error_code ec;
  const std::filesystem::path tmp = std::filesystem::path(data_dir) / "db.from-snapshot.tmp";
  std::filesystem::remove_all(tmp, ec);
  std::filesystem::copy(snapshot, tmp, std::filesystem::copy_options::recursive, ec);
  if (!ec) std::filesystem::rename(tmp, std::filesystem::path(data_dir) / "db", ec);
  if (ec) {
    return Fail(ErrorCode::kUnavailable,
                "--from-snapshot: copying " + snapshot + ": " + ec.message());
  }
  if (auto s = store::SetCurrentDbName(data_dir, "db"); !s) return s;
  spdlog::info("seeded {}/db from snapshot {}", data_dir, snapshot);
  return Ok();
}

// GET /readyz: the consumer's readiness (and the group's routing), with every partition's
// progress as details.
http::ReadyState ReadyState(ingest::Consumer* cons, const cluster::Membership* m) {
  std::string details;
  JsonWriter w(&details);
  w.BeginObject();
  // Status and reason come from one reading, so that a change in between never yields
  // "not_ready" without a reason.
  std::string reason = cons->NotReadyReason();
  if (reason.empty() && m != nullptr && !m->synced()) {
    reason = "the group's routing has not caught up with the cluster topic yet";
  }
  if (!reason.empty()) {
    w.Key("reason").String(reason);
  }
  w.Key("ingest").BeginObject();
  w.Key("cluster_id").String(cons->cluster_id());
  w.Key("partitions").BeginArray();
  for (const auto& p : cons->Progress()) {
    w.BeginObject();
    w.Key("topic").String(p.topic);
    w.Key("partition").Int(p.partition);
    w.Key("role").String(p.role == ingest::PartitionRole::kOwned     ? "owned"
                         : p.role == ingest::PartitionRole::kStandby ? "standby"
                                                                     : "idle");
    w.Key("next_offset").Int(p.next_offset);
    w.Key("persisted_offset").Int(p.persisted_offset);
    w.Key("read_offset").Int(p.read_offset);
    w.Key("high_watermark").Int(p.high_watermark);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  if (m != nullptr) {
    w.Key("cluster");
    m->WriteJson(&w);
  }
  w.EndObject();
  return http::ReadyState{reason.empty(), std::move(details)};
}

}  // namespace

ExitStatus CheckFlags(const Flags& flags, Tallyd* t) {
  if (!flags.now_text.empty()) {
    auto now = ParseRfc3339Millis(flags.now_text);
    if (!now) return Usage("--now: " + now.error().message + " (example: 2026-03-01T12:00:00Z)");
    t->clock = Clock::Fixed(*now);
  }
  auto event_limits = event::LimitsFromFlags(flags.min_event_time, flags.max_future, &t->clock);
  if (!event_limits) return Usage(event_limits.error().message);
  t->event_limits = *event_limits;
  auto address = ParseHostPort(flags.listen, /*allow_zero_port=*/true, "--listen");
  if (!address) return Usage(address.error().message);
  http::ServerOptions& server_options = t->server_options;
  server_options.host = address->host;
  server_options.port = address->port;
  server_options.threads = flags.http_threads;
  if (flags.http_ingest) {
    server_options.max_body_bytes = std::max(server_options.max_body_bytes, flags.ingest_max_bytes);
  }
  return std::nullopt;
}

ExitStatus OpenDataDir(const Flags& flags, Tallyd* t) {
  std::error_code ec;
  std::filesystem::create_directories(flags.data_dir, ec);
  if (ec) return Die("cannot create --data-dir " + flags.data_dir + ": " + ec.message());

  auto keys = http::KeyStore::LoadFile(flags.keys_path);
  if (!keys) {
    return Die("cannot load --keys " + flags.keys_path + ": " + keys.error().message +
               " (create one with `tally keys new`)");
  }
  t->keys.emplace(std::move(*keys));
  return std::nullopt;
}

ExitStatus StartEmbeddedBroker(Flags* flags, Tallyd* t) {
  if (flags->brokers != "embedded" && !flags->brokers.empty()) return std::nullopt;
  const std::string& topic = flags->topic;
  kafka::EmbeddedBrokerOptions bo;
  bo.topics = {{topic, flags->partitions},
               {flags->dlq_topic.empty() ? topic + ".dlq" : flags->dlq_topic, 1},
               {flags->cluster_topic.empty() ? topic + ".cluster" : flags->cluster_topic, 1}};
  auto b = kafka::EmbeddedBroker::Start(bo);
  if (!b) return Die("cannot start the embedded broker: " + b.error().message);
  t->broker = std::move(*b);
  flags->brokers = t->broker->bootstrap();
  std::string addr_file = (std::filesystem::path(flags->data_dir) / "broker.addr").string();
  WriteFileAtomically(addr_file, flags->brokers);
  spdlog::info(
      "embedded Kafka broker listening on {} (written to {}); {}: for trying tally out and "
      "tests, use --brokers with a Kafka cluster in production",
      flags->brokers, addr_file, kafka::EmbeddedBroker::RetentionSummary(topic, flags->partitions));
  return std::nullopt;
}

ExitStatus OpenLiveViews(const Flags& flags, Tallyd* t) {
  t->store_options.dedupe_window_ms = static_cast<int64_t>(flags.dedupe_days * 86'400'000);
  if (!flags.from_snapshot.empty()) {
    if (auto s = SeedFromSnapshot(flags.from_snapshot, flags.data_dir); !s) {
      return Die(s.error().message);
    }
  }
  auto live_views = LiveViews::Open(flags.data_dir, t->store_options);
  if (!live_views) return Die(live_views.error().message);
  t->live = std::move(*live_views);
  t->first = t->live->Current();
  return std::nullopt;
}

ExitStatus ConfigureIngest(const Flags& flags, Tallyd* t) {
  ingest::ConsumerOptions& co = t->consumer_options;
  co.directory = t->first->directory.get();
  co.brokers = flags.brokers;
  co.topic = flags.topic;
  co.dlq_topic = flags.dlq_topic;
  co.group = flags.group;
  co.membership =
      flags.group_join == "always" ? ingest::Membership::kGroup : ingest::Membership::kAuto;
  for (const std::string& kv : flags.kafka_options) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) return Usage("--kafka-option must be NAME=VALUE, got " + kv);
    co.extra_config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (flags.instance_id == "auto") {
    std::string path = (std::filesystem::path(flags.data_dir) / "instance.id").string();
    std::ifstream in(path);
    std::getline(in, co.instance_id);
    if (co.instance_id.empty()) {
      co.instance_id = "tallyd-" + RandomHex(8);
      if (!WriteFileAtomically(path, co.instance_id)) return Die("cannot write " + path);
    }
  } else if (flags.instance_id != "none") {
    co.instance_id = flags.instance_id;
  }
  co.organizations.insert(t->keys->organizations().begin(), t->keys->organizations().end());
  co.batch_max_messages = flags.batch_max;
  co.batch_ready_messages = flags.batch_ready;
  co.late_policy = flags.late_events == "reject" ? aggregate::LatePolicy::kReject
                                                 : aggregate::LatePolicy::kApply;
  co.batch_max_ms = flags.batch_ms;
  co.persist_interval_ms = flags.persist_ms;
  co.persist_max_bytes = static_cast<size_t>(flags.persist_max_mib) << 20;
  co.event_limits = t->event_limits;
  co.new_log_policy = flags.new_log == "restart" ? ingest::NewLogPolicy::kRestart
                      : flags.new_log == "stop"  ? ingest::NewLogPolicy::kStop
                                                 : ingest::NewLogPolicy::kAuto;
  return std::nullopt;
}

ExitStatus JoinGroup(const Flags& flags, Tallyd* t) {
  ingest::ConsumerOptions& co = t->consumer_options;
  if (flags.advertise_url.empty() && flags.standby_replicas > 0) {
    return Usage("--standby-replicas needs --advertise-url (standbys belong to a group)");
  }
  co.max_lag = flags.max_lag;
  if (flags.advertise_url.empty()) return std::nullopt;
  if (auto url = cluster::ParseBaseUrl(flags.advertise_url); !url) {
    return Usage("--advertise-url: " + url.error().message);
  }
  co.membership = ingest::Membership::kGroup;
  co.drop_idle_after_ms =
      flags.drop_idle_after_s < 0 ? -1 : static_cast<int64_t>(flags.drop_idle_after_s * 1000);
  cluster::MembershipOptions mo;
  mo.brokers = flags.brokers;
  mo.topic = flags.cluster_topic.empty() ? flags.topic + ".cluster" : flags.cluster_topic;
  mo.instance_id = co.instance_id.empty() ? "tallyd-" + RandomHex(8) : co.instance_id;
  mo.url = flags.advertise_url;
  mo.standby_replicas = flags.standby_replicas;
  mo.extra = co.extra_config;
  auto parts = StartCluster(mo, &co, &t->registry);
  if (!parts) return Die("cannot join the group's cluster topic: " + parts.error().message);
  t->cluster = std::move(*parts);
  spdlog::info("joining group '{}' as {} ({}), routing through {}", flags.group, mo.instance_id,
               flags.advertise_url, mo.topic);
  return std::nullopt;
}

ExitStatus CreateConsumer(Tallyd* t) {
  auto consumer =
      ingest::Consumer::Create(t->consumer_options, t->first->store.get(), &t->registry);
  if (!consumer) return Die(consumer.error().message);
  t->consumer = std::move(*consumer);
  t->first.reset();
  t->live->AttachConsumer(t->consumer.get());
  if (t->cluster) AttachConsumer(t->cluster.get(), t->consumer.get());
  return std::nullopt;
}

void WireQueries(const Flags& flags, Tallyd* t) {
  // Every request takes the live views once (a switch never changes them mid-request).
  LiveViews* live = t->live.get();
  const Clock& clock = t->clock;
  http::ServiceDeps& deps = t->deps;
  deps.keys = std::make_shared<const http::KeyStore>(std::move(*t->keys));
  deps.metrics = &t->registry;
  deps.clock = &clock;
  deps.cache_ttl_s = flags.cache_ttl;
  deps.cache_max_bytes = flags.cache_max_bytes;
  deps.server_timing = flags.server_timing;
  deps.workspace_metrics.run = [live, &clock](const query::WorkspaceMetricsRequest& r) {
    return query::RunWorkspaceMetrics(*live->Current()->store, clock, r);
  };
  deps.workspace_metrics.workspace_known = [live](std::string_view ws) {
    return query::WorkspaceKnown(*live->Current()->store, ws);
  };
  deps.leaderboard.run = [live, &clock](const query::LeaderboardRequest& r) {
    return query::RunLeaderboard(*live->Current()->store, clock, r);
  };
  deps.leaderboard.resolve_organization = [live](std::string_view org) {
    return query::ResolveWorkspaceByOrganization(*live->Current()->store, org);
  };
  deps.leaderboard.workspace_known = [live](std::string_view ws) {
    return query::WorkspaceKnown(*live->Current()->store, ws);
  };
  deps.superagents.run = [live, &clock](const query::SuperagentsRequest& r) {
    auto v = live->Current();
    return query::OpenSuperagents(*v->store, *v->superagents, clock, r);
  };
  deps.superagents.workspace_known = [live](std::string_view ws) {
    return query::WorkspaceKnown(*live->Current()->store, ws);
  };
  deps.requests.run = [live](query::RequestsMetric m, const query::RequestsQuery& q) {
    auto v = live->Current();
    return query::RunRequests(*v->store, *v->directory, m, q);
  };
  deps.requests.organization_known = [live](std::string_view org) {
    return query::OrganizationHasRequests(*live->Current()->store, org);
  };
  deps.requests.all_organizations = [live] {
    return query::RequestOrganizations(*live->Current()->store);
  };
  deps.admin.switch_db = [live](std::string_view db) { return live->Switch(db); };
  deps.admin.snapshot = [live](const std::string& path) { return live->Snapshot(path); };
  deps.ready = [cons = t->consumer.get(), m = t->cluster ? t->cluster->membership.get() : nullptr] {
    return ReadyState(cons, m);
  };
}

ExitStatus WireHttpIngest(const Flags& flags, Tallyd* t) {
  if (!flags.http_ingest) return std::nullopt;
  http::ServiceDeps& deps = t->deps;
  // POST /v1/events: one shared idempotent producer; each request waits for its own messages.
  kafka::ProducerOptions po;
  po.brokers = flags.brokers;
  po.start_on_first_use = true;  // costs nothing until the first POST /v1/events
  for (const auto& [name, value] : t->consumer_options.extra_config) po.extra[name] = value;
  auto p = kafka::Producer::Create(po);
  if (!p) return Die("cannot create the HTTP ingest producer: " + p.error().message);
  t->ingest_producer = std::move(*p);
  // On the embedded broker, hold POST /v1/events back (503) rather than publish events the
  // broker would trim before ingest reads them; on a real cluster this never holds back.
  // Requests are interactive: bulk producers yield long before they are held back.
  kafka::RetentionGuardOptions go;
  go.hold_fraction = kafka::kInteractiveHoldFraction;
  go.brokers = flags.brokers;
  go.topic = flags.topic;
  go.group = flags.group;
  go.unacknowledged_messages = [p = t->ingest_producer.get()] { return p->in_flight(); };
  auto guard = kafka::RetentionGuard::Create(go);
  if (!guard) return Die("cannot create the HTTP ingest hold-back: " + guard.error().message);
  t->retention_guard = std::move(*guard);
  deps.events.admit = [g = t->retention_guard.get()](size_t bytes, size_t messages) {
    return g->Admit(bytes, messages);
  };
  deps.events.publish = [producer = t->ingest_producer.get(), topic = flags.topic,
                         ingest_timeout_ms =
                             flags.ingest_timeout_ms](std::span<const http::EventMessage> events) {
    std::vector<kafka::OutMessage> out;
    out.reserve(events.size());
    for (const auto& e : events) out.push_back({.key = e.key, .value = e.value});
    return producer->ProduceAndWait(topic, out, ingest_timeout_ms);
  };
  deps.events_options.max_body_bytes = flags.ingest_max_bytes;
  deps.events_options.max_events = flags.ingest_max_events;
  deps.events_options.max_concurrent_publishes = flags.ingest_max_concurrent;
  deps.events_options.event_limits = t->event_limits;
  return std::nullopt;
}

ExitStatus StartHttpServer(const Flags& flags, Tallyd* t) {
  if (t->cluster) RouteThroughCluster(t->cluster.get(), t->live.get(), &t->deps);
  auto router = http::BuildRouter(std::move(t->deps));
  if (!router) return Die(router.error().message);
  t->router = *router;
  auto server = http::Server::Start(t->server_options, t->router);
  if (!server) return Die("cannot listen on " + flags.listen + ": " + server.error().message);
  t->server = std::move(*server);
  std::string bound = t->server_options.host + ":" + std::to_string(t->server->port());
  spdlog::info("tallyd listening on http://{} (allocator: {})", bound, AllocatorName());
  if (!flags.port_file.empty() && !WriteFileAtomically(flags.port_file, bound)) {
    return Die("cannot write --port-file " + flags.port_file);
  }
  return std::nullopt;
}

}  // namespace tally::tallyd
