// tally replay: rebuild or extend tally's views from NDJSON files (plain, .gz, .zst) and/or a
// Kafka topic, through the same parse/validate/dedupe/fold path as live ingest (lib/replay).
// tally snapshot: ask a running tallyd for a consistent RocksDB checkpoint.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_flags.h"
#include "commands.h"
#include "common/json_writer.h"
#include "common/parse.h"
#include "event/event_parser.h"
#include "http/auth.h"
#include "http/client.h"
#include "kafka/admin.h"
#include "kafka/embedded_broker.h"
#include "replay/line_reader.h"
#include "replay/progress.h"
#include "replay/replayer.h"
#include "replay/topic_reader.h"
#include "store/data_dir.h"
#include "store/store.h"

namespace tally::cli {
namespace {

struct ReplayArgs {
  std::string mode = "rebuild";
  std::string data_dir;
  std::vector<std::string> files;
  std::string brokers, broker_addr_file, topic = "usage-events";
  bool from_topic = false;
  std::string start = "beginning";
  std::string tallyd, token;
  size_t batch = 100000;  // bigger than live ingest's: fewer rolled-up rows to rewrite
  double dedupe_days = 7;
  bool no_switch = false;
  std::string late_events = "apply";
  std::string keys;  // keys file whose [[workspaces]] bindings apply
  std::string min_event_time{event::kDefaultMinEventTimeFlag};
  std::string max_future{event::kDefaultMaxFutureFlag};
};

Result<replay::TopicStart> ParseStart(const std::string& text) {
  replay::TopicStart s;
  if (text == "beginning") return s;
  if (text.rfind("offsets:", 0) == 0) {
    s.kind = replay::TopicStart::Kind::kOffsets;
    std::string rest = text.substr(8);
    size_t pos = 0;
    while (pos < rest.size()) {
      size_t comma = rest.find(',', pos);
      std::string item =
          rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      size_t eq = item.find('=');
      if (eq == std::string::npos) {
        return Fail(ErrorCode::kInvalidArgument,
                    "--start offsets:P=O[,P=O...] expected, got '" + text + "'", "start");
      }
      auto partition =
          ParseInt64(std::string_view(item).substr(0, eq), 0, INT32_MAX, "--start partition");
      if (!partition) return std::unexpected(partition.error());
      auto offset =
          ParseInt64(std::string_view(item).substr(eq + 1), 0, INT64_MAX, "--start offset");
      if (!offset) return std::unexpected(offset.error());
      s.offsets[static_cast<int32_t>(*partition)] = *offset;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return s;
  }
  auto t = ParseRfc3339Millis(text);
  if (!t) {
    return Fail(ErrorCode::kInvalidArgument,
                "--start must be 'beginning', an RFC 3339 time (2026-01-01T00:00:00Z) or "
                "offsets:P=O[,P=O...]; got '" +
                    text + "'",
                "start");
  }
  s.kind = replay::TopicStart::Kind::kTimestamp;
  s.timestamp_ms = *t;
  return s;
}

void PrintSummary(const replay::ReplayStats& st, const std::string& where) {
  std::printf("replay summary: read %s, applied %s, duplicates %s, rejected %s\n",
              replay::Progress::Thousands(st.read).c_str(),
              replay::Progress::Thousands(st.applied).c_str(),
              replay::Progress::Thousands(st.duplicates).c_str(),
              replay::Progress::Thousands(st.rejected).c_str());
  for (const auto& [reason, n] : st.rejected_by_reason) {
    std::printf("  rejected %-20s %s\n", reason.c_str(), replay::Progress::Thousands(n).c_str());
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("  peak memory %s MiB\n",
              replay::Progress::Thousands(static_cast<uint64_t>(usage.ru_maxrss) >> 10).c_str());
  if (!where.empty()) std::printf("views: %s\n", where.c_str());
}

// Feeds every file, then the topic if asked, into `replayer`.
int Feed(const ReplayArgs& a, replay::Replayer* replayer, const std::string& brokers) {
  uint64_t total = 0;
  for (const std::string& f : a.files) {
    std::error_code ec;
    auto size = std::filesystem::file_size(f, ec);
    if (!ec) total += size;
  }
  replay::Progress progress(stderr, total);
  uint64_t done_before = 0;
  for (const std::string& f : a.files) {
    auto reader = replay::LineReader::Open(f);
    if (!reader) {
      std::fprintf(stderr, "replay: %s\n", reader.error().message.c_str());
      return 1;
    }
    std::string_view line;
    while ((*reader)->Next(&line)) {
      if (line.empty()) continue;
      if (auto s = replayer->Add(line); !s) {
        std::fprintf(stderr, "\nreplay: store error: %s\n", s.error().message.c_str());
        return 1;
      }
      progress.Update(replayer->stats().read, done_before + (*reader)->file_bytes_read());
    }
    if (auto s = (*reader)->status(); !s) {
      std::fprintf(stderr, "\nreplay: %s (lines before the error were applied)\n",
                   s.error().message.c_str());
      return 1;
    }
    done_before += (*reader)->file_bytes_read();
  }
  uint64_t bytes = done_before;
  if (a.from_topic) {
    auto start = ParseStart(a.start);
    if (!start) {
      std::fprintf(stderr, "replay: %s\n", start.error().message.c_str());
      return 2;
    }
    replay::TopicReaderOptions o;
    o.brokers = brokers;
    o.topic = a.topic;
    o.start = *start;
    auto reader = replay::TopicReader::Open(o);
    if (!reader) {
      std::fprintf(stderr, "replay: topic %s: %s\n", a.topic.c_str(),
                   reader.error().message.c_str());
      return 1;
    }
    progress.set_total_bytes(0);
    replay::TopicMessage m;
    // Chase a live topic: read to the end seen at the start, then to the new end, until little
    // is left, so that the service that takes these views over has little to catch up.
    for (int round = 0; round < 5; ++round) {
      while ((*reader)->Next(&m)) {
        bytes += m.payload.size();
        if (auto s = replayer->Add(m.payload, replay::LineOrigin{a.topic, m.partition, m.offset});
            !s) {
          std::fprintf(stderr, "\nreplay: store error: %s\n", s.error().message.c_str());
          return 1;
        }
        progress.Update(replayer->stats().read, bytes, (*reader)->remaining());
      }
      if (auto s = (*reader)->status(); !s) {
        std::fprintf(stderr, "\nreplay: topic %s: %s\n", a.topic.c_str(),
                     s.error().message.c_str());
        return 1;
      }
      if (auto s = (*reader)->RefreshEnd(); !s) break;
      if ((*reader)->remaining() < 1000) break;
    }
    if ((*reader)->skipped() > 0) {
      std::fprintf(stderr,
                   "\nreplay: WARNING: %lld messages were trimmed from the topic before they "
                   "could be read; they are not in the rebuilt views\n",
                   static_cast<long long>((*reader)->skipped()));
    }
  }
  if (auto s = replayer->Finish(); !s) {
    std::fprintf(stderr, "\nreplay: store error: %s\n", s.error().message.c_str());
    return 1;
  }
  progress.Done(replayer->stats().read, bytes);
  return 0;
}

// HOST and PORT of `url` (http://HOST:PORT[/...] or HOST:PORT), port 1..65535;
// kInvalidArgument naming --tallyd otherwise.
Result<HostPort> ParseTallydUrl(const std::string& url) {
  std::string_view hostport = url;
  if (hostport.starts_with("http://")) hostport.remove_prefix(7);
  if (auto slash = hostport.find('/'); slash != std::string_view::npos) {
    hostport = hostport.substr(0, slash);
  }
  auto address = ParseHostPort(hostport, /*allow_zero_port=*/false, "--tallyd");
  if (!address) {
    return Fail(ErrorCode::kInvalidArgument,
                address.error().message + " (expected http://HOST:PORT)", "tallyd");
  }
  return address;
}

// A connection to the tallyd at `url` (as ParseTallydUrl); kInvalidArgument for another form,
// kUnavailable when it does not answer.
Result<http::HttpClient> ConnectTallyd(const std::string& url) {
  auto address = ParseTallydUrl(url);
  if (!address) return std::unexpected(address.error());
  return http::HttpClient::Connect(address->host, address->port);
}

// POSTs {"<field>": "<value>"} to tallyd's admin endpoint `path` with the admin `token`.
Result<http::HttpReply> PostAdmin(http::HttpClient& client, const char* path, const char* field,
                                  const std::string& value, const std::string& token) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key(field).String(value);
  w.EndObject();
  return client.Send("POST", path, body, {{"Authorization", "Bearer " + token}});
}

// POST /admin/v1/switch on a running tallyd. "" on success, else the reason.
std::string AskToSwitch(const std::string& url, const std::string& token, const std::string& db,
                        bool* pending) {
  *pending = false;
  auto client = ConnectTallyd(url);
  if (!client) return client.error().message;
  auto reply = PostAdmin(*client, "/admin/v1/switch", "db", db, token);
  if (!reply) return reply.error().message;
  if (reply->status == 202) {
    *pending = true;
    std::printf(
        "tallyd ingests into %s and moves queries to it once it has caught up with the "
        "old store (watch its log)\n",
        db.c_str());
    return "";
  }
  if (reply->status != 200) return "HTTP " + std::to_string(reply->status) + ": " + reply->body;
  return "";
}

// Checks the flag values (before any work: a rebuild can take hours) and fills `ro` from them.
// An exit code when the command ends here; nullopt to go on.
std::optional<int> MakeReplayOptions(const ReplayArgs& a, const std::string& brokers,
                                     replay::ReplayOptions* ro) {
  if (auto start = ParseStart(a.start); !start) {
    std::fprintf(stderr, "replay: %s\n", start.error().message.c_str());
    return 2;
  }
  if (!a.tallyd.empty()) {
    if (auto address = ParseTallydUrl(a.tallyd); !address) {
      std::fprintf(stderr, "replay: %s\n", address.error().message.c_str());
      return 2;
    }
  }
  ro->batch_size = a.batch;
  ro->late_policy =
      a.late_events == "reject" ? aggregate::LatePolicy::kReject : aggregate::LatePolicy::kApply;
  if (!a.keys.empty()) {
    auto keys = http::KeyStore::LoadFile(a.keys);
    if (!keys) {
      std::fprintf(stderr, "replay: cannot load --keys %s: %s\n", a.keys.c_str(),
                   keys.error().message.c_str());
      return 2;
    }
    ro->organizations.insert(keys->organizations().begin(), keys->organizations().end());
  }
  auto limits = event::LimitsFromFlags(a.min_event_time, a.max_future, /*clock=*/nullptr);
  if (!limits) {
    std::fprintf(stderr, "replay: %s\n", limits.error().message.c_str());
    return 2;
  }
  ro->event_limits = *limits;
  if (a.from_topic) {
    auto cid = kafka::ClusterId(brokers, 15000);
    if (!cid) {
      std::fprintf(stderr, "replay: %s\n", cid.error().message.c_str());
      return 1;
    }
    ro->cluster_id = *cid;
  }
  return std::nullopt;
}

// --mode merge: into the store tallyd's CURRENT names (tallyd stopped).
int RunMerge(const ReplayArgs& a, store::StoreOptions so, const replay::ReplayOptions& ro,
             const std::string& brokers) {
  if (a.data_dir.empty()) {
    std::fprintf(stderr,
                 "replay: merge needs --data-dir (with tallyd stopped). To merge into a "
                 "running tallyd, produce the events to its topic instead: `tally produce "
                 "--brokers B FILE` (duplicates by (source, id) are absorbed there).\n");
    return 2;
  }
  so.path = a.data_dir + "/" + store::CurrentDbName(a.data_dir);
  so.create_if_missing = false;
  auto st = store::Store::Open(so);
  if (!st) {
    std::fprintf(stderr,
                 "replay: cannot open %s: %s\n(is tallyd running on it? Stop it first, or "
                 "produce the events to its topic with `tally produce`.)\n",
                 so.path.c_str(), st.error().message.c_str());
    return 1;
  }
  auto replayer = replay::Replayer::Create(st->get(), ro);
  if (!replayer) {
    std::fprintf(stderr, "replay: %s\n", replayer.error().message.c_str());
    return 1;
  }
  int rc = Feed(a, replayer->get(), brokers);
  PrintSummary((*replayer)->stats(), so.path + " (merged)");
  return rc;
}

// After a complete rebuild into `so.path` (database `name`): switches tallyd to it (--tallyd),
// or CURRENT when nothing holds the live store, or says how.
int SwitchToRebuild(const ReplayArgs& a, const store::StoreOptions& so, const std::string& name) {
  if (a.no_switch) {
    std::printf(
        "not switched (--no-switch). To switch a running tallyd:\n  curl -X POST "
        "http://HOST:PORT/admin/v1/switch -H 'Authorization: Bearer <admin token>' "
        "-d '{\"db\":\"%s\"}'\n",
        name.c_str());
    return 0;
  }
  if (!a.tallyd.empty()) {
    bool pending = false;
    std::string err = AskToSwitch(a.tallyd, a.token, name, &pending);
    if (!err.empty()) {
      std::fprintf(stderr, "replay: tallyd did not switch: %s\n", err.c_str());
      return 1;
    }
    if (!pending) {
      std::printf("tallyd at %s now serves and ingests into %s\n", a.tallyd.c_str(), name.c_str());
    }
    return 0;
  }
  // No tallyd named: switch directly if nothing holds the live store, else say how.
  store::StoreOptions probe = so;
  probe.path = a.data_dir + "/" + store::CurrentDbName(a.data_dir);
  probe.create_if_missing = false;
  // Held = locked by a process. A store of an older data layout also fails to open, but it is
  // exactly the one a rebuild replaces.
  bool held = false;
  if (std::filesystem::exists(probe.path)) {
    auto live = store::Store::Open(probe);
    held = !live.has_value() && live.error().code == ErrorCode::kUnavailable;
  }
  if (held) {
    std::printf(
        "a tallyd holds %s. Switch it with:\n  curl -X POST http://HOST:PORT/admin/v1/switch "
        "-H 'Authorization: Bearer <admin token>' -d '{\"db\":\"%s\"}'\n(or rerun with "
        "--tallyd http://HOST:PORT --token TOKEN)\n",
        probe.path.c_str(), name.c_str());
    return 0;
  }
  if (auto s = store::SetCurrentDbName(a.data_dir, name); !s) {
    std::fprintf(stderr, "replay: %s\n", s.error().message.c_str());
    return 1;
  }
  std::printf("%s/CURRENT now names %s: tallyd --data-dir %s starts from it\n", a.data_dir.c_str(),
              name.c_str(), a.data_dir.c_str());
  return 0;
}

int RunReplay(const ReplayArgs& a) {
  if (a.files.empty() && !a.from_topic) {
    std::fprintf(stderr, "replay: nothing to read: give FILES and/or --from-topic\n");
    return 2;
  }
  std::string brokers = a.brokers;
  if (a.from_topic && brokers.empty()) {
    if (a.broker_addr_file.empty()) {
      std::fprintf(stderr, "replay: --from-topic needs --brokers or --broker-addr-file\n");
      return 2;
    }
    auto address = kafka::ReadBrokerAddressFile(a.broker_addr_file);
    if (!address) {
      std::fprintf(stderr, "replay: %s\n", address.error().message.c_str());
      return 2;
    }
    brokers = *address;
  }
  replay::ReplayOptions ro;
  if (auto rc = MakeReplayOptions(a, brokers, &ro)) return *rc;
  store::StoreOptions so;
  so.dedupe_window_ms = static_cast<int64_t>(a.dedupe_days * 86'400'000);
  if (a.mode == "merge") return RunMerge(a, so, ro, brokers);

  // Rebuild: a fresh store next to the live one, switched to only once complete.
  if (a.data_dir.empty()) {
    std::fprintf(stderr, "replay: rebuild needs --data-dir (tallyd's data directory)\n");
    return 2;
  }
  std::filesystem::create_directories(a.data_dir);
  auto reserved = store::NewRebuildDbName(a.data_dir);
  if (!reserved) {
    std::fprintf(stderr, "replay: %s\n", reserved.error().message.c_str());
    return 1;
  }
  const std::string name = *reserved;
  so.path = a.data_dir + "/" + name;
  // Nothing reads a rebuild before it is complete, and a failed one is rebuilt from scratch: a
  // write-ahead log would only slow it down. Flushed below before anything can open it.
  so.disable_wal = true;
  int rc;
  replay::ReplayStats stats;
  {
    auto st = store::Store::Open(so);
    if (!st) {
      std::fprintf(stderr, "replay: %s\n", st.error().message.c_str());
      return 1;
    }
    auto replayer = replay::Replayer::Create(st->get(), ro);
    if (!replayer) {
      std::fprintf(stderr, "replay: %s\n", replayer.error().message.c_str());
      return 1;
    }
    rc = Feed(a, replayer->get(), brokers);
    stats = (*replayer)->stats();
    if (auto flushed = (*st)->Flush(); !flushed) {
      std::fprintf(stderr, "replay: %s\n", flushed.error().message.c_str());
      rc = 1;
    }
  }  // closed: tallyd can open it
  PrintSummary(stats, so.path);
  if (rc != 0) {
    std::fprintf(stderr, "replay: the rebuild is incomplete and was NOT switched to; remove %s\n",
                 so.path.c_str());
    return rc;
  }
  return SwitchToRebuild(a, so, name);
}

struct SnapshotArgs {
  std::string tallyd, token, out;
};

int RunSnapshot(const SnapshotArgs& a) {
  std::string out = std::filesystem::absolute(a.out).lexically_normal().string();
  auto client = ConnectTallyd(a.tallyd);
  if (!client) {
    std::fprintf(stderr, "snapshot: %s\n", client.error().message.c_str());
    return client.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  auto reply = PostAdmin(*client, "/admin/v1/snapshot", "path", out, a.token);
  if (!reply) {
    std::fprintf(stderr, "snapshot: %s\n", reply.error().message.c_str());
    return 1;
  }
  if (reply->status != 200) {
    std::fprintf(stderr, "snapshot: HTTP %d: %s\n", reply->status, reply->body.c_str());
    return 1;
  }
  std::printf(
      "snapshot written to %s\nstart a replica from it: tallyd --data-dir NEW_DIR "
      "--from-snapshot %s --group <another group>\n",
      out.c_str(), out.c_str());
  return 0;
}

}  // namespace

Command AddReplayCommand(CLI::App& app) {
  auto a = std::make_shared<ReplayArgs>();
  CLI::App* sub = app.add_subcommand(
      "replay",
      "Rebuild or extend tally's views from NDJSON files (plain, .gz, .zst) and/or a Kafka "
      "topic, through the same validation and dedupe as live ingest.");
  sub->add_option("--mode", a->mode,
                  "rebuild: write a fresh store next to the live one and switch to it when "
                  "complete; merge: add events into the existing views (tallyd stopped)")
      ->check(CLI::IsMember({"rebuild", "merge"}))
      ->capture_default_str();
  sub->add_option("--data-dir", a->data_dir, "tallyd's --data-dir")->required();
  sub->add_option("files", a->files, "NDJSON files, plain, gzip or zstd ('-' = stdin)");
  sub->add_flag("--from-topic", a->from_topic, "Also read the Kafka topic (after the files)");
  sub->add_option("-b,--brokers", a->brokers, "bootstrap.servers of the topic");
  sub->add_option("--broker-addr-file", a->broker_addr_file,
                  "Read the bootstrap address from this file (e.g. <data-dir>/broker.addr)");
  sub->add_option("-t,--topic", a->topic, "Topic")->capture_default_str();
  sub->add_option("--start", a->start,
                  "Where to start in the topic: beginning, an RFC 3339 time, or "
                  "offsets:P=O[,P=O...]")
      ->capture_default_str();
  sub->add_option("--tallyd", a->tallyd,
                  "Running tallyd to switch to the rebuilt store (http://HOST:PORT)");
  sub->add_option("--token", a->token, "Admin API token for --tallyd");
  sub->add_flag("--no-switch", a->no_switch, "Build only; print the command that switches");
  sub->add_option(
         "--batch", a->batch,
         "Events per store write; bounds memory: peak about 260 MiB + 3.8 KiB per event of "
         "--batch (the summary states it)")
      ->check(UintIn(1, 100'000'000))
      ->capture_default_str();
  sub->add_option("--late-events", a->late_events,
                  "Events older than the dedupe window before the newest event: apply (count "
                  "them) or reject (count them as rejected, reason late_event)")
      ->check(CLI::IsMember({"apply", "reject"}))
      ->capture_default_str();
  sub->add_option("--dedupe-window-days", a->dedupe_days, "As tallyd's")
      ->check(NumberIn(0, 36'500))
      ->capture_default_str();
  sub->add_option("--min-event-time", a->min_event_time,
                  "Earliest accepted event time (RFC 3339); earlier events are counted as "
                  "rejected, reason time_out_of_range. As tallyd's")
      ->capture_default_str();
  sub->add_option("--max-future", a->max_future,
                  "How far past the current time an event time may be (e.g. 1h, 30m, 3600s); "
                  "later events are rejected like those before --min-event-time. As tallyd's")
      ->capture_default_str();
  sub->add_option("--keys", a->keys,
                  "tallyd's keys file: its [[workspaces]] organization bindings apply (events "
                  "naming another organization are rejected, reason organization_mismatch)");
  sub->footer(
      "A progress bar is drawn on a terminal (plain lines every 5 s otherwise); a summary "
      "(read, applied, duplicates, rejected by reason) ends the run.\n\n"
      "Examples:\n"
      "  # rebuild from archives plus the live topic, then switch the running tallyd:\n"
      "  tally replay --mode rebuild --data-dir /var/lib/tally 2026-*.ndjson.zst --from-topic \\\n"
      "      --brokers kafka:9092 --tallyd http://127.0.0.1:8080 --token $ADMIN_TOKEN\n"
      "  # backfill history into a stopped tallyd's views (re-running it changes nothing):\n"
      "  tally replay --mode merge --data-dir /var/lib/tally history.ndjson.gz\n"
      "  # rebuild from the topic since a time:\n"
      "  tally replay --data-dir ./data --from-topic --broker-addr-file ./data/broker.addr "
      "--start 2026-01-01T00:00:00Z");
  return {sub, [a] { return RunReplay(*a); }};
}

Command AddSnapshotCommand(CLI::App& app) {
  auto a = std::make_shared<SnapshotArgs>();
  CLI::App* sub = app.add_subcommand(
      "snapshot",
      "Ask a running tallyd for a consistent checkpoint of its views (offsets included), to "
      "start a replica from (`tallyd --from-snapshot`).");
  sub->add_option("--tallyd", a->tallyd, "http://HOST:PORT of the running tallyd")->required();
  sub->add_option("--token", a->token, "Admin API token")->required();
  sub->add_option("-o,--out", a->out, "Directory to create (same machine as tallyd)")->required();
  return {sub, [a] { return RunSnapshot(*a); }};
}

}  // namespace tally::cli
