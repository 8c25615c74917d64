#pragma once
// tallyd's command line: every flag with its default and help text (`tallyd --help`), read from
// argv and the --config TOML file (flags win).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "event/event_parser.h"
#include "kafka/embedded_broker.h"

namespace tally::tallyd {

// The parsed flags. Defaults are the documented ones; ParseFlags only range-checks, and the
// wiring (wiring.h) interprets them.
struct Flags {
  std::string brokers = "embedded", topic = "usage-events", dlq_topic, group = "tally";
  std::string data_dir = "./data", listen = "127.0.0.1:8080", keys_path = "config/keys.dev.toml";
  std::string now_text, port_file, new_log = "auto", log_level = "info";
  int cache_ttl = 300, http_threads = 2, partitions = kafka::kDefaultEmbeddedPartitions,
      batch_max = 50000, batch_ready = 2000, batch_ms = 250, persist_ms = 5000,
      persist_max_mib = 256;
  double dedupe_days = 7;
  std::string from_snapshot;
  std::string late_events = "apply";
  std::string min_event_time{event::kDefaultMinEventTimeFlag};
  std::string max_future{event::kDefaultMaxFutureFlag};
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
  bool server_timing = false;
  int ingest_timeout_ms = 10000, ingest_max_concurrent = 0;
};

// Parses argv (and the --config file it names) into *flags. Returns the exit status when the
// process must end now (--help: 0; a usage error, reported on stderr: cli::kUsageExit), nullopt
// to go on.
std::optional<int> ParseFlags(int argc, char** argv, Flags* flags);

}  // namespace tally::tallyd
