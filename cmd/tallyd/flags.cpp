#include "tallyd/flags.h"

#include <CLI/CLI.hpp>
#include <cstdint>

#include "cli_flags.h"

namespace tally::tallyd {
namespace {

// The flags are added in the order `tallyd --help` lists them.

// Where tallyd reads from, keeps its data and listens; the response cache.
void AddServiceFlags(CLI::App* app, Flags* f) {
  app->add_option("--brokers", f->brokers,
                  "Kafka bootstrap servers, or 'embedded' for an in-process broker")
      ->capture_default_str();
  app->add_option("--topic", f->topic, "Topic of usage events")->capture_default_str();
  app->add_option("--dlq-topic", f->dlq_topic, "Dead-letter topic (default: <topic>.dlq)");
  app->add_option("--group", f->group, "Kafka consumer group")->capture_default_str();
  app->add_option("--data-dir", f->data_dir, "Directory for the RocksDB views and broker.addr")
      ->capture_default_str();
  app->add_option("--listen", f->listen, "HTTP listen address HOST:PORT (port 0 = any free port)")
      ->check(cli::HostPortSpec(/*allow_zero_port=*/true))
      ->capture_default_str();
  app->add_option("--keys", f->keys_path, "API keys file (TOML, SHA-256 hashes only)")
      ->capture_default_str();
  app->add_option("--cache-ttl", f->cache_ttl, "Response cache TTL in seconds (0 disables)")
      ->check(cli::IntIn(0, 31'536'000))
      ->capture_default_str();
  app->add_option("--cache-max-bytes", f->cache_max_bytes,
                  "Memory bound of the response cache in bytes (keys and bodies; oldest entries "
                  "evicted first; a response over 1/8 of it is not cached; 0 disables)")
      ->check(cli::UintIn(0, uint64_t{1} << 40))
      ->capture_default_str();
  app->add_flag("--server-timing", f->server_timing,
                "Add a 'Server-Timing: app;dur=<ms>' header (routing and handler time) to every "
                "handled HTTP response (benchmarks, browser dev tools; default: off)");
  app->add_option(
      "--now", f->now_text,
      "Freeze the clock at this RFC 3339 instant (tests and demos; default: real time)");
  app->add_option("--port-file", f->port_file,
                  "Write the bound HOST:PORT to this file once listening");
  app->add_option("--http-threads", f->http_threads, "HTTP worker threads")
      ->check(cli::IntIn(1, 1024))
      ->capture_default_str();
  app->add_option("--partitions", f->partitions,
                  "Partitions of the topic on the embedded broker (each keeps its newest 5 MiB)")
      ->check(cli::IntIn(1, 1024))
      ->capture_default_str();
}

// Dedupe, batching and persisting of ingested events; a new log.
void AddBatchFlags(CLI::App* app, Flags* f) {
  app->add_option("--dedupe-window-days", f->dedupe_days, "Dedupe window in days of event time")
      ->check(cli::NumberIn(0, 36'500))
      ->capture_default_str();
  app->add_option("--batch-max", f->batch_max, "Most messages per ingest batch")
      ->check(cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app->add_option("--batch-ready", f->batch_ready,
                  "Messages that make an ingest batch ready to store before --batch-ms is up")
      ->check(cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app->add_option("--batch-ms", f->batch_ms,
                  "Most time from an ingest batch's first message to its store (unless it holds "
                  "--batch-ready messages first), unless the previous batch is still being "
                  "stored: then it grows up to --batch-max (ms). Longer: a quiet stream costs "
                  "less CPU per event; shorter: events are visible sooner")
      ->check(cli::IntIn(0, 60'000))
      ->capture_default_str();
  app->add_option("--persist-ms", f->persist_ms,
                  "Most time ingested events stay in memory only (visible to queries, persisted "
                  "to disk with their offsets after at most this long, when the stream pauses, "
                  "and on stop; a crash makes tallyd consume them again). 0: write every batch "
                  "to disk (more disk work per event)")
      ->check(cli::IntIn(0, 600'000))
      ->capture_default_str();
  app->add_option("--persist-max-mib", f->persist_max_mib,
                  "Persist as soon as the events in memory only take this much memory (MiB)")
      ->check(cli::IntIn(1, 1'000'000))
      ->capture_default_str();
  app->add_option(
         "--on-new-log", f->new_log,
         "What to do when the log is new (cluster id changed, offsets beyond its end): "
         "auto (restart on the embedded/mock broker, stop on a real cluster), restart, stop")
      ->check(CLI::IsMember({"auto", "restart", "stop"}))
      ->capture_default_str();
}

// Consumer-group membership, a group of instances, readiness, librdkafka settings.
void AddGroupFlags(CLI::App* app, Flags* f) {
  app->add_option("--group-join", f->group_join,
                  "auto: on the embedded broker read every partition directly, without joining "
                  "--group, so that a restart resumes at once (offsets are still committed to "
                  "--group); on a real cluster join --group. always: join --group everywhere")
      ->check(CLI::IsMember({"auto", "always"}))
      ->capture_default_str();
  app->add_option(
         "--instance-id", f->instance_id,
         "Static consumer-group member id: 'auto' keeps one in <data-dir>/instance.id so a "
         "restarted tallyd gets its partitions back at once from a real cluster; 'none' "
         "for dynamic membership")
      ->capture_default_str();
  app->add_option("--advertise-url", f->advertise_url,
                  "Join a group of tallyd instances (the same --group, their own --data-dir): the "
                  "URL where the others reach this one's HTTP API, http://HOST:PORT. Partitions "
                  "are split by the consumer group (--group-join always is implied), and every "
                  "instance answers every query, forwarding it to the instance that owns its "
                  "scope. Empty: a single instance");
  app->add_option("--standby-replicas", f->standby_replicas,
                  "In a group (--advertise-url): how many other instances keep a warm copy of each "
                  "partition this one owns (and so how many copies of others' partitions this "
                  "one keeps, in its own --data-dir). An instance that takes over a partition it "
                  "keeps a copy of continues from that copy instead of the partition's whole log. "
                  "1 is recommended for a group; with members - 1 every takeover is warm")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app->add_option("--drop-idle-partitions-after", f->drop_idle_after_s,
                  "In a group (--advertise-url): seconds after which the views of a partition "
                  "this instance neither owns nor keeps as a standby are deleted from its "
                  "--data-dir (if the partition comes back, it is consumed again from its log). "
                  "Only in a data directory the group started empty. Negative: keep them")
      ->capture_default_str();
  app->add_option("--max-lag", f->max_lag,
                  "Not ready (/readyz 503) while the views of the partitions this instance owns "
                  "trail the log by more than this many messages in all, e.g. while catching up "
                  "after a restart or under a load it cannot keep up with (ingest goes on). "
                  "0: no limit. Independently, an instance cut off from its partitions' leaders "
                  "for 2 s is not ready either")
      ->check(cli::IntIn(0, INT64_MAX))
      ->capture_default_str();
  app->add_option("--cluster-topic", f->cluster_topic,
                  "Topic where a group's instances publish what they own and where each "
                  "workspace's events are (one partition; compacted on a real cluster). "
                  "Default: <topic>.cluster");
  app->add_option("--kafka-option", f->kafka_options,
                  "Extra librdkafka setting NAME=VALUE (repeatable), for the consumer and the "
                  "POST /v1/events producer");
}

// Which events are accepted; starting from a snapshot.
void AddEventFlags(CLI::App* app, Flags* f) {
  app->add_option("--late-events", f->late_events,
                  "Events older than the dedupe window before the newest event seen: apply "
                  "(count them) or reject (dead-letter them with reason 'late event')")
      ->check(CLI::IsMember({"apply", "reject"}))
      ->capture_default_str();
  app->add_option("--min-event-time", f->min_event_time,
                  "Earliest accepted event time (RFC 3339); earlier events are dead-lettered "
                  "(Kafka) or refused with 400 (POST /v1/events), reason 'time out of range'")
      ->capture_default_str();
  app->add_option("--max-future", f->max_future,
                  "How far past the clock (--now or real time) an event time may be, e.g. 1h, 30m, "
                  "3600s; later events are refused like those before --min-event-time")
      ->capture_default_str();
  app->add_option("--from-snapshot", f->from_snapshot,
                  "Start from a snapshot (`tally snapshot`): copied into --data-dir when it has no "
                  "store yet; ingest then continues from the snapshot's offsets");
}

// POST /v1/events; logging.
void AddHttpIngestFlags(CLI::App* app, Flags* f) {
  app->add_option("--http-ingest", f->http_ingest,
                  "Serve POST /v1/events (CloudEvents over HTTP, published to --topic): on/off")
      ->capture_default_str();
  app->add_option("--http-ingest-max-bytes", f->ingest_max_bytes,
                  "Largest POST /v1/events body (413 above; raises the server's body limit)")
      ->check(cli::UintIn(1, 1u << 30))
      ->capture_default_str();
  app->add_option("--http-ingest-max-events", f->ingest_max_events,
                  "Most events per POST /v1/events batch (413 above)")
      ->check(cli::UintIn(1, 1'000'000))
      ->capture_default_str();
  app->add_option("--http-ingest-timeout-ms", f->ingest_timeout_ms,
                  "How long POST /v1/events waits for the broker's acknowledgements (503 after)")
      ->check(cli::IntIn(1, 3'600'000))
      ->capture_default_str();
  app->add_option("--http-ingest-max-concurrent", f->ingest_max_concurrent,
                  "POST /v1/events requests waiting for the broker at once (503 above; 0 = no "
                  "limit); each holds an HTTP thread while it waits")
      ->check(cli::IntIn(0, 1'000'000))
      ->capture_default_str();
  app->add_option("--log-level", f->log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

}  // namespace

std::optional<int> ParseFlags(int argc, char** argv, Flags* flags) {
  CLI::App app{
      "tallyd: streaming usage analytics. Consumes usage events from Kafka into RocksDB views "
      "and serves the workspace-metrics, agent-leaderboard, agent-monitoring and request-analytics "
      "APIs over HTTP.\n\n"
      "Examples:\n"
      "  tallyd --data-dir ./data --keys config/keys.dev.toml      # embedded broker\n"
      "  tallyd --brokers kafka1:9092,kafka2:9092 --group tally --listen 0.0.0.0:8080 \\\n"
      "         --keys /etc/tally/keys.toml --data-dir /var/lib/tally\n"};
  app.set_config("--config", "", "TOML config file (flags override it)");
  AddServiceFlags(&app, flags);
  AddBatchFlags(&app, flags);
  AddGroupFlags(&app, flags);
  AddEventFlags(&app, flags);
  AddHttpIngestFlags(&app, flags);
  return cli::ParseCommandLine(app, argc, argv);
}

}  // namespace tally::tallyd
