// tallyd: the tally service. Wires the store, the ingest consumer (and, with no brokers
// configured, an embedded Kafka-protocol broker) and the HTTP API together.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_flags.h"
#include "cluster/forwarder.h"
#include "common/allocator.h"
#include "common/calendar.h"
#include "common/clock.h"
#include "common/json_writer.h"
#include "common/metrics.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/thread.h"
#include "event/event_parser.h"
#include "http/auth.h"
#include "http/server.h"
#include "http/service.h"
#include "ingest/consumer.h"
#include "ingest/live_views.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "kafka/retention_guard.h"
#include "query/leaderboard.h"
#include "query/requests.h"
#include "query/superagents.h"
#include "query/workspace_metrics.h"
#include "store/data_dir.h"
#include "store/store.h"
#include "tallyd/cluster_wiring.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
void OnSignal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

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
  return tally::cli::kUsageExit;
}

// Copies a snapshot (a RocksDB checkpoint) into <data_dir>/db unless a store is already there.
tally::Status SeedFromSnapshot(const std::string& snapshot, const std::string& data_dir) {
  const std::filesystem::path live =
      std::filesystem::path(data_dir) / tally::store::CurrentDbName(data_dir);
  if (std::filesystem::exists(live / "CURRENT")) {
    spdlog::warn("--from-snapshot ignored: {} already holds a store", live.string());
    return tally::Ok();
  }
  if (!std::filesystem::exists(std::filesystem::path(snapshot) / "CURRENT")) {
    return tally::Fail(tally::ErrorCode::kNotFound,
                       "--from-snapshot: " + snapshot + " is not a snapshot (no CURRENT file)");
  }
  std::error_code ec;
  const std::filesystem::path tmp = std::filesystem::path(data_dir) / "db.from-snapshot.tmp";
  std::filesystem::remove_all(tmp, ec);
  std::filesystem::copy(snapshot, tmp, std::filesystem::copy_options::recursive, ec);
  if (!ec) std::filesystem::rename(tmp, std::filesystem::path(data_dir) / "db", ec);
  if (ec) {
    return tally::Fail(tally::ErrorCode::kUnavailable,
                       "--from-snapshot: copying " + snapshot + ": " + ec.message());
  }
  if (auto s = tally::store::SetCurrentDbName(data_dir, "db"); !s) return s;
  spdlog::info("seeded {}/db from snapshot {}", data_dir, snapshot);
  return tally::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  // The query engines build and drop in-memory tables of tens of MB (the Super Agents table is
  // patched into a new copy after each write): keep freed memory in the heap for reuse rather than
  // returning it to the kernel, which made every such copy fault in fresh zeroed pages (measured:
  // a quarter of tallyd's CPU time in the first pages after writes). With jemalloc (the default
  // build) these only tune glibc's malloc, which then serves nothing; jemalloc reuses freed
  // extents for seconds before it returns them.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{
      "tallyd: streaming usage analytics. Consumes usage events from Kafka into RocksDB views "
      "and serves the workspace-metrics, agent-leaderboard, agent-monitoring and request-analytics "
      "APIs over HTTP.\n\n"
      "Examples:\n"
      "  tallyd --data-dir ./data --keys config/keys.dev.toml      # embedded broker\n"
      "  tallyd --brokers kafka1:9092,kafka2:9092 --group tally --listen 0.0.0.0:8080 \\\n"
      "         --keys /etc/tally/keys.toml --data-dir /var/lib/tally\n"};
  app.set_config("--config", "", "TOML config file (flags override it)");
  std::string brokers = "embedded", topic = "usage-events", dlq_topic, group = "tally";
  std::string data_dir = "./data", listen = "127.0.0.1:8080", keys_path = "config/keys.dev.toml";
  std::string now_text, port_file, new_log = "auto", log_level = "info";
  int cache_ttl = 300, http_threads = 2, partitions = tally::kafka::kDefaultEmbeddedPartitions,
      batch_max = 50000, batch_ready = 2000, batch_ms = 250, persist_ms = 5000,
      persist_max_mib = 256;
  double dedupe_days = 7;
  std::string from_snapshot;
  std::string late_events = "apply";
  std::string min_event_time(tally::event::kDefaultMinEventTimeFlag);
  std::string max_future(tally::event::kDefaultMaxFutureFlag);
  std::string instance_id = "auto";
  std::string group_join = "auto";
  std::string advertise_url, cluster_topic;
  int standby_replicas = 0;
  double drop_idle_after_s = 300;
  int64_t max_lag = 0;
  std::vector<std::string> kafka_options;
  bool http_ingest = true;
  size_t ingest_max_bytes = 1 << 20, ingest_max_events = 1000;
  size_t cache_max_bytes = 64u << 20;
  int ingest_timeout_ms = 10000, ingest_max_concurrent = 0;
  app.add_option("--brokers", brokers,
                 "Kafka bootstrap servers, or 'embedded' for an in-process broker")
      ->capture_default_str();
  app.add_option("--topic", topic, "Topic of usage events")->capture_default_str();
  app.add_option("--dlq-topic", dlq_topic, "Dead-letter topic (default: <topic>.dlq)");
  app.add_option("--group", group, "Kafka consumer group")->capture_default_str();
  app.add_option("--data-dir", data_dir, "Directory for the RocksDB views and broker.addr")
      ->capture_default_str();
  app.add_option("--listen", listen, "HTTP listen address HOST:PORT (port 0 = any free port)")
      ->check(tally::cli::HostPortSpec(/*allow_zero_port=*/true))
      ->capture_default_str();
  app.add_option("--keys", keys_path, "API keys file (TOML, SHA-256 hashes only)")
      ->capture_default_str();
  app.add_option("--cache-ttl", cache_ttl, "Response cache TTL in seconds (0 disables)")
      ->check(tally::cli::IntIn(0, 31'536'000))
      ->capture_default_str();
  app.add_option("--cache-max-bytes", cache_max_bytes,
                 "Memory bound of the response cache in bytes (keys and bodies; oldest entries "
                 "evicted first; a response over 1/8 of it is not cached; 0 disables)")
      ->check(tally::cli::UintIn(0, uint64_t{1} << 40))
      ->capture_default_str();
  bool server_timing = false;
  app.add_flag("--server-timing", server_timing,
               "Add a 'Server-Timing: app;dur=<ms>' header (routing and handler time) to every "
               "handled HTTP response (benchmarks, browser dev tools; default: off)");
  app.add_option("--now", now_text,
                 "Freeze the clock at this RFC 3339 instant (tests and demos; default: real time)");
  app.add_option("--port-file", port_file, "Write the bound HOST:PORT to this file once listening");
  app.add_option("--http-threads", http_threads, "HTTP worker threads")
      ->check(tally::cli::IntIn(1, 1024))
      ->capture_default_str();
  app.add_option("--partitions", partitions,
                 "Partitions of the topic on the embedded broker (each keeps its newest 5 MiB)")
      ->check(tally::cli::IntIn(1, 1024))
      ->capture_default_str();
  app.add_option("--dedupe-window-days", dedupe_days, "Dedupe window in days of event time")
      ->check(tally::cli::NumberIn(0, 36'500))
      ->capture_default_str();
  app.add_option("--batch-max", batch_max, "Most messages per ingest batch")
      ->check(tally::cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--batch-ready", batch_ready,
                 "Messages that make an ingest batch ready to store before --batch-ms is up")
      ->check(tally::cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--batch-ms", batch_ms,
                 "Most time from an ingest batch's first message to its store (unless it holds "
                 "--batch-ready messages first), unless the previous batch is still being "
                 "stored: then it grows up to --batch-max (ms). Longer: a quiet stream costs "
                 "less CPU per event; shorter: events are visible sooner")
      ->check(tally::cli::IntIn(0, 60'000))
      ->capture_default_str();
  app.add_option("--persist-ms", persist_ms,
                 "Most time ingested events stay in memory only (visible to queries, persisted "
                 "to disk with their offsets after at most this long, when the stream pauses, "
                 "and on stop; a crash makes tallyd consume them again). 0: write every batch "
                 "to disk (more disk work per event)")
      ->check(tally::cli::IntIn(0, 600'000))
      ->capture_default_str();
  app.add_option("--persist-max-mib", persist_max_mib,
                 "Persist as soon as the events in memory only take this much memory (MiB)")
      ->check(tally::cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app.add_option(
         "--on-new-log", new_log,
         "What to do when the log is new (cluster id changed, offsets beyond its end): "
         "auto (restart on the embedded/mock broker, stop on a real cluster), restart, stop")
      ->check(CLI::IsMember({"auto", "restart", "stop"}))
      ->capture_default_str();
  app.add_option("--group-join", group_join,
                 "auto: on the embedded broker read every partition directly, without joining "
                 "--group, so that a restart resumes at once (offsets are still committed to "
                 "--group); on a real cluster join --group. always: join --group everywhere")
      ->check(CLI::IsMember({"auto", "always"}))
      ->capture_default_str();
  app.add_option("--instance-id", instance_id,
                 "Static consumer-group member id: 'auto' keeps one in <data-dir>/instance.id so a "
                 "restarted tallyd gets its partitions back at once from a real cluster; 'none' "
                 "for dynamic membership")
      ->capture_default_str();
  app.add_option("--advertise-url", advertise_url,
                 "Join a group of tallyd instances (the same --group, their own --data-dir): the "
                 "URL where the others reach this one's HTTP API, http://HOST:PORT. Partitions "
                 "are split by the consumer group (--group-join always is implied), and every "
                 "instance answers every query, forwarding it to the instance that owns its "
                 "scope. Empty: a single instance");
  app.add_option("--standby-replicas", standby_replicas,
                 "In a group (--advertise-url): how many other instances keep a warm copy of each "
                 "partition this one owns (and so how many copies of others' partitions this "
                 "one keeps, in its own --data-dir). An instance that takes over a partition it "
                 "keeps a copy of continues from that copy instead of the partition's whole log. "
                 "1 is recommended for a group; with members - 1 every takeover is warm")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_option("--drop-idle-partitions-after", drop_idle_after_s,
                 "In a group (--advertise-url): seconds after which the views of a partition "
                 "this instance neither owns nor keeps as a standby are deleted from its "
                 "--data-dir (if the partition comes back, it is consumed again from its log). "
                 "Only in a data directory the group started empty. Negative: keep them")
      ->capture_default_str();
  app.add_option("--max-lag", max_lag,
                 "Not ready (/readyz 503) while the views of the partitions this instance owns "
                 "trail the log by more than this many messages in all, e.g. while catching up "
                 "after a restart or under a load it cannot keep up with (ingest goes on). "
                 "0: no limit. Independently, an instance cut off from its partitions' leaders "
                 "for 2 s is not ready either")
      ->check(tally::cli::IntIn(0, INT64_MAX))
      ->capture_default_str();
  app.add_option("--cluster-topic", cluster_topic,
                 "Topic where a group's instances publish what they own and where each "
                 "workspace's events are (one partition; compacted on a real cluster). "
                 "Default: <topic>.cluster");
  app.add_option("--kafka-option", kafka_options,
                 "Extra librdkafka setting NAME=VALUE (repeatable), for the consumer and the "
                 "POST /v1/events producer");
  app.add_option("--late-events", late_events,
                 "Events older than the dedupe window before the newest event seen: apply "
                 "(count them) or reject (dead-letter them with reason 'late event')")
      ->check(CLI::IsMember({"apply", "reject"}))
      ->capture_default_str();
  app.add_option("--min-event-time", min_event_time,
                 "Earliest accepted event time (RFC 3339); earlier events are dead-lettered "
                 "(Kafka) or refused with 400 (POST /v1/events), reason 'time out of range'")
      ->capture_default_str();
  app.add_option("--max-future", max_future,
                 "How far past the clock (--now or real time) an event time may be, e.g. 1h, 30m, "
                 "3600s; later events are refused like those before --min-event-time")
      ->capture_default_str();
  app.add_option("--from-snapshot", from_snapshot,
                 "Start from a snapshot (`tally snapshot`): copied into --data-dir when it has no "
                 "store yet; ingest then continues from the snapshot's offsets");
  app.add_option("--http-ingest", http_ingest,
                 "Serve POST /v1/events (CloudEvents over HTTP, published to --topic): on/off")
      ->capture_default_str();
  app.add_option("--http-ingest-max-bytes", ingest_max_bytes,
                 "Largest POST /v1/events body (413 above; raises the server's body limit)")
      ->check(tally::cli::UintIn(1, 1u << 30))
      ->capture_default_str();
  app.add_option("--http-ingest-max-events", ingest_max_events,
                 "Most events per POST /v1/events batch (413 above)")
      ->check(tally::cli::UintIn(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--http-ingest-timeout-ms", ingest_timeout_ms,
                 "How long POST /v1/events waits for the broker's acknowledgements (503 after)")
      ->check(tally::cli::IntIn(1, 3'600'000))
      ->capture_default_str();
  app.add_option("--http-ingest-max-concurrent", ingest_max_concurrent,
                 "POST /v1/events requests waiting for the broker at once (503 above; 0 = no "
                 "limit); each holds an HTTP thread while it waits")
      ->check(tally::cli::IntIn(0, 1'000'000))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  if (auto rc = tally::cli::ParseCommandLine(app, argc, argv)) return *rc;
  spdlog::set_level(spdlog::level::from_str(log_level));

  tally::Clock clock;
  if (!now_text.empty()) {
    auto now = tally::ParseRfc3339Millis(now_text);
    if (!now) return Usage("--now: " + now.error().message + " (example: 2026-03-01T12:00:00Z)");
    clock = tally::Clock::Fixed(*now);
  }
  auto event_limits = tally::event::LimitsFromFlags(min_event_time, max_future, &clock);
  if (!event_limits) return Usage(event_limits.error().message);
  auto address = tally::ParseHostPort(listen, /*allow_zero_port=*/true, "--listen");
  if (!address) return Usage(address.error().message);
  tally::http::ServerOptions server_options;
  server_options.host = address->host;
  server_options.port = address->port;
  server_options.threads = http_threads;
  if (http_ingest) {
    server_options.max_body_bytes = std::max(server_options.max_body_bytes, ingest_max_bytes);
  }

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Die("cannot create --data-dir " + data_dir + ": " + ec.message());

  auto keys = tally::http::KeyStore::LoadFile(keys_path);
  if (!keys) {
    return Die("cannot load --keys " + keys_path + ": " + keys.error().message +
               " (create one with `tally keys new`)");
  }

  std::unique_ptr<tally::kafka::EmbeddedBroker> broker;
  if (brokers == "embedded" || brokers.empty()) {
    tally::kafka::EmbeddedBrokerOptions bo;
    bo.topics = {{topic, partitions},
                 {dlq_topic.empty() ? topic + ".dlq" : dlq_topic, 1},
                 {cluster_topic.empty() ? topic + ".cluster" : cluster_topic, 1}};
    auto b = tally::kafka::EmbeddedBroker::Start(bo);
    if (!b) return Die("cannot start the embedded broker: " + b.error().message);
    broker = std::move(*b);
    brokers = broker->bootstrap();
    std::string addr_file = (std::filesystem::path(data_dir) / "broker.addr").string();
    WriteFileAtomically(addr_file, brokers);
    spdlog::info(
        "embedded Kafka broker listening on {} (written to {}); {}: for trying tally out and "
        "tests, use --brokers with a Kafka cluster in production",
        brokers, addr_file, tally::kafka::EmbeddedBroker::RetentionSummary(topic, partitions));
  }

  tally::store::StoreOptions store_options;
  store_options.dedupe_window_ms = static_cast<int64_t>(dedupe_days * 86'400'000);
  if (!from_snapshot.empty()) {
    if (auto s = SeedFromSnapshot(from_snapshot, data_dir); !s) return Die(s.error().message);
  }
  auto live_views = tally::ingest::LiveViews::Open(data_dir, store_options);
  if (!live_views) return Die(live_views.error().message);
  tally::ingest::LiveViews* live = live_views->get();
  auto first = live->Current();

  tally::MetricsRegistry registry;
  tally::ingest::ConsumerOptions co;
  co.directory = first->directory.get();
  co.brokers = brokers;
  co.topic = topic;
  co.dlq_topic = dlq_topic;
  co.group = group;
  co.membership =
      group_join == "always" ? tally::ingest::Membership::kGroup : tally::ingest::Membership::kAuto;
  for (const std::string& kv : kafka_options) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) return Usage("--kafka-option must be NAME=VALUE, got " + kv);
    co.extra_config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (instance_id == "auto") {
    std::string path = (std::filesystem::path(data_dir) / "instance.id").string();
    std::ifstream in(path);
    std::getline(in, co.instance_id);
    if (co.instance_id.empty()) {
      co.instance_id = "tallyd-" + tally::RandomHex(8);
      if (!WriteFileAtomically(path, co.instance_id)) return Die("cannot write " + path);
    }
  } else if (instance_id != "none") {
    co.instance_id = instance_id;
  }
  co.organizations.insert(keys->organizations().begin(), keys->organizations().end());
  co.batch_max_messages = batch_max;
  co.batch_ready_messages = batch_ready;
  co.late_policy = late_events == "reject" ? tally::aggregate::LatePolicy::kReject
                                           : tally::aggregate::LatePolicy::kApply;
  co.batch_max_ms = batch_ms;
  co.persist_interval_ms = persist_ms;
  co.persist_max_bytes = static_cast<size_t>(persist_max_mib) << 20;
  co.event_limits = *event_limits;
  co.new_log_policy = new_log == "restart" ? tally::ingest::NewLogPolicy::kRestart
                      : new_log == "stop"  ? tally::ingest::NewLogPolicy::kStop
                                           : tally::ingest::NewLogPolicy::kAuto;
  std::unique_ptr<tally::tallyd::ClusterParts> cluster;
  if (advertise_url.empty() && standby_replicas > 0) {
    return Usage("--standby-replicas needs --advertise-url (standbys belong to a group)");
  }
  co.max_lag = max_lag;
  if (!advertise_url.empty()) {
    if (auto url = tally::cluster::ParseBaseUrl(advertise_url); !url) {
      return Usage("--advertise-url: " + url.error().message);
    }
    co.membership = tally::ingest::Membership::kGroup;
    co.drop_idle_after_ms =
        drop_idle_after_s < 0 ? -1 : static_cast<int64_t>(drop_idle_after_s * 1000);
    tally::cluster::MembershipOptions mo;
    mo.brokers = brokers;
    mo.topic = cluster_topic.empty() ? topic + ".cluster" : cluster_topic;
    mo.instance_id = co.instance_id.empty() ? "tallyd-" + tally::RandomHex(8) : co.instance_id;
    mo.url = advertise_url;
    mo.standby_replicas = standby_replicas;
    mo.extra = co.extra_config;
    auto parts = tally::tallyd::StartCluster(mo, &co, &registry);
    if (!parts) return Die("cannot join the group's cluster topic: " + parts.error().message);
    cluster = std::move(*parts);
    spdlog::info("joining group '{}' as {} ({}), routing through {}", group, mo.instance_id,
                 advertise_url, mo.topic);
  }
  auto consumer = tally::ingest::Consumer::Create(co, first->store.get(), &registry);
  if (!consumer) return Die(consumer.error().message);
  first.reset();
  live->AttachConsumer(consumer->get());
  if (cluster) tally::tallyd::AttachConsumer(cluster.get(), consumer->get());

  // Every request takes the live views once (a switch never changes them mid-request).
  tally::ingest::Consumer* cons = consumer->get();
  tally::http::ServiceDeps deps;
  deps.keys = std::make_shared<const tally::http::KeyStore>(std::move(*keys));
  deps.metrics = &registry;
  deps.clock = &clock;
  deps.cache_ttl_s = cache_ttl;
  deps.cache_max_bytes = cache_max_bytes;
  deps.server_timing = server_timing;
  deps.workspace_metrics.run = [live, &clock](const tally::query::WorkspaceMetricsRequest& r) {
    return tally::query::RunWorkspaceMetrics(*live->Current()->store, clock, r);
  };
  deps.workspace_metrics.workspace_known = [live](std::string_view ws) {
    return tally::query::WorkspaceKnown(*live->Current()->store, ws);
  };
  deps.leaderboard.run = [live, &clock](const tally::query::LeaderboardRequest& r) {
    return tally::query::RunLeaderboard(*live->Current()->store, clock, r);
  };
  deps.leaderboard.resolve_organization = [live](std::string_view org) {
    return tally::query::ResolveWorkspaceByOrganization(*live->Current()->store, org);
  };
  deps.leaderboard.workspace_known = [live](std::string_view ws) {
    return tally::query::WorkspaceKnown(*live->Current()->store, ws);
  };
  // The Super Agents tables of the live store (and of the one a switch brings in), kept for as
  // long as the handler that queries them.
  deps.superagents.run = [live, &clock, cache = std::make_shared<tally::query::SuperagentsCache>()](
                             const tally::query::SuperagentsRequest& r) {
    return tally::query::OpenSuperagents(*live->Current()->store, *cache, clock, r);
  };
  deps.superagents.workspace_known = [live](std::string_view ws) {
    return tally::query::WorkspaceKnown(*live->Current()->store, ws);
  };
  deps.requests.run = [live](tally::query::RequestsMetric m, const tally::query::RequestsQuery& q) {
    auto v = live->Current();
    return tally::query::RunRequests(*v->store, *v->directory, m, q);
  };
  deps.requests.organization_known = [live](std::string_view org) {
    return tally::query::OrganizationHasRequests(*live->Current()->store, org);
  };
  deps.requests.all_organizations = [live] {
    return tally::query::RequestOrganizations(*live->Current()->store);
  };
  deps.admin.switch_db = [live](std::string_view db) { return live->Switch(db); };
  deps.admin.snapshot = [live](const std::string& path) { return live->Snapshot(path); };
  deps.ready = [cons, m = cluster ? cluster->membership.get() : nullptr] {
    std::string details;
    tally::JsonWriter w(&details);
    w.BeginObject();
    std::string reason = cons->NotReadyReason();
    if (reason.empty() && m != nullptr && !m->synced()) {
      reason = "the group's routing has not caught up with the cluster topic yet";
    }
    if (!reason.empty()) {
      w.Key("reason");
      w.String(reason);
    }
    w.Key("ingest");
    w.BeginObject();
    w.Key("cluster_id");
    w.String(cons->cluster_id());
    w.Key("partitions");
    w.BeginArray();
    for (const auto& p : cons->Progress()) {
      w.BeginObject();
      w.Key("topic");
      w.String(p.topic);
      w.Key("partition");
      w.Int(p.partition);
      w.Key("role");
      w.String(p.role == tally::ingest::PartitionRole::kOwned     ? "owned"
               : p.role == tally::ingest::PartitionRole::kStandby ? "standby"
                                                                  : "idle");
      w.Key("next_offset");
      w.Int(p.next_offset);
      w.Key("persisted_offset");
      w.Int(p.persisted_offset);
      w.Key("read_offset");
      w.Int(p.read_offset);
      w.Key("high_watermark");
      w.Int(p.high_watermark);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    if (m != nullptr) {
      w.Key("cluster");
      m->WriteJson(&w);
    }
    w.EndObject();
    return tally::http::ReadyState{cons->Ready() && (m == nullptr || m->synced()),
                                   std::move(details)};
  };
  // POST /v1/events: one shared idempotent producer; each request waits for its own messages.
  std::unique_ptr<tally::kafka::Producer> ingest_producer;
  std::unique_ptr<tally::kafka::RetentionGuard> retention_guard;
  if (http_ingest) {
    tally::kafka::ProducerOptions po;
    po.brokers = brokers;
    po.start_on_first_use = true;  // costs nothing until the first POST /v1/events
    for (const auto& [name, value] : co.extra_config) po.extra[name] = value;
    auto p = tally::kafka::Producer::Create(po);
    if (!p) return Die("cannot create the HTTP ingest producer: " + p.error().message);
    ingest_producer = std::move(*p);
    // On the embedded broker, hold POST /v1/events back (503) rather than publish events the
    // broker would trim before ingest reads them; on a real cluster this never holds back.
    // Requests are interactive: bulk producers yield long before they are held back.
    tally::kafka::RetentionGuardOptions go;
    go.hold_fraction = tally::kafka::kInteractiveHoldFraction;
    go.brokers = brokers;
    go.topic = topic;
    go.group = group;
    go.unacknowledged_messages = [p = ingest_producer.get()] { return p->in_flight(); };
    auto guard = tally::kafka::RetentionGuard::Create(go);
    if (!guard) return Die("cannot create the HTTP ingest hold-back: " + guard.error().message);
    retention_guard = std::move(*guard);
    deps.events.admit = [g = retention_guard.get()](size_t bytes, size_t messages) {
      return g->Admit(bytes, messages);
    };
    deps.events.publish = [producer = ingest_producer.get(), topic,
                           ingest_timeout_ms](std::span<const tally::http::EventMessage> events) {
      std::vector<tally::kafka::OutMessage> out;
      out.reserve(events.size());
      for (const auto& e : events) out.push_back({.key = e.key, .value = e.value});
      return producer->ProduceAndWait(topic, out, ingest_timeout_ms);
    };
    deps.events_options.max_body_bytes = ingest_max_bytes;
    deps.events_options.max_events = ingest_max_events;
    deps.events_options.max_concurrent_publishes = ingest_max_concurrent;
    deps.events_options.event_limits = *event_limits;
  }
  if (cluster) tally::tallyd::RouteThroughCluster(cluster.get(), live, &deps);
  auto router = tally::http::BuildRouter(std::move(deps));
  if (!router) return Die(router.error().message);
  auto server = tally::http::Server::Start(server_options, *router);
  if (!server) return Die("cannot listen on " + listen + ": " + server.error().message);
  std::string bound = server_options.host + ":" + std::to_string((*server)->port());
  spdlog::info("tallyd listening on http://{} (allocator: {})", bound, tally::AllocatorName());
  if (!port_file.empty() && !WriteFileAtomically(port_file, bound)) {
    return Die("cannot write --port-file " + port_file);
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  tally::Status ingest_status = tally::Ok();
  std::atomic<bool> ingest_done{false};
  std::thread ingest([&] {
    tally::NameCurrentThread("tally-ingest");
    try {
      ingest_status = cons->Run();
    } catch (const std::exception& e) {  // last resort: report, never take the server down
      ingest_status = tally::Fail(tally::ErrorCode::kInternal, e.what());
    }
    ingest_done.store(true);
  });
  while (!g_stop.load() && !ingest_done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (ingest_done.load() && !ingest_status) {
    spdlog::critical("ingest stopped: {}. Queries are still served from the views.",
                     ingest_status.error().message);
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::info("shutting down ({})", g_signal.load() ? strsignal(g_signal.load()) : "ingest ended");
  if (cluster) tally::tallyd::DetachConsumer(cluster.get());
  cons->Stop();
  ingest.join();
  (*server)->Stop();
  return 0;
}
