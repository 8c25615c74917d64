// tally dlq: inspect and redrive tallyd's dead letters.
//
//   tally dlq list    [--brokers B | --broker-addr-file F] [--topic usage-events.dlq]
//                     [--reason SUBSTR] [--json | --raw] [--full]
//   tally dlq redrive (--offsets P:O[,P:O...] | --reason SUBSTR | --all) [--fixed FILE]
//                     [--to usage-events] [--dry-run] [--force]
//   tally dlq redrive --fixed FILE [--to usage-events] [--dry-run]
//
// A dead letter is a message tallyd could not ingest, copied to the dead-letter topic with its
// original key and the headers named in lib/kafka/dead_letter.h (the reason, and the source
// topic, partition and offset). The dead-letter topic is read from its low to its high watermark
// (at start) without a consumer group: listing commits nothing and can be repeated.
//
// Redriving produces to the main topic (idempotent producer) either the selected dead letters'
// payloads unchanged (after a tallyd upgrade that accepts them) or corrected events from an
// NDJSON file. tallyd dedupes by (source, id), so redriving the same events twice counts them
// once. Payloads the current event parser still rejects are not sent unless --force (they would
// only be dead-lettered again).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli_flags.h"
#include "commands.h"
#include "common/calendar.h"
#include "common/json_writer.h"
#include "common/parse.h"
#include "common/result.h"
#include "common/strings.h"
#include "event/event_parser.h"
#include "kafka/dead_letter.h"
#include "kafka/embedded_broker.h"
#include "kafka/partition_reader.h"
#include "kafka/producer.h"

namespace tally::cli {
namespace {

struct DlqArgs {
  std::string brokers;
  std::string broker_addr_file;
  std::string topic = "usage-events.dlq";
  std::string reason;  // substring filter (list, redrive)
  int timeout_s = 30;
  // list
  bool json = false;
  bool raw = false;
  bool full = false;
  // redrive
  std::string offsets;  // "P:O[,P:O...]"
  bool all = false;
  std::string fixed;
  std::string to = "usage-events";
  bool dry_run = false;
  bool force = false;
};

struct DeadLetter {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
  std::string reason;        // "" when the header is missing
  std::string source_topic;  // idem
  std::string source_partition;
  std::string source_offset;
};

Result<std::string> Brokers(const DlqArgs& a) {
  if (!a.brokers.empty()) return a.brokers;
  if (a.broker_addr_file.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "give --brokers or --broker-addr-file", "brokers");
  }
  return kafka::ReadBrokerAddressFile(a.broker_addr_file);
}

// A printable, single-line excerpt of a payload: control bytes escaped, cut at `max` bytes
// (0 = whole).
std::string Excerpt(std::string_view s, size_t max) {
  std::string out;
  const size_t n = max == 0 ? s.size() : std::min(s.size(), max);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (n < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// Reasons that embed a value (late events name their time) are counted under their stable
// prefix.
std::string ReasonKey(const std::string& reason) {
  if (reason.rfind("late event", 0) == 0) return "late event";
  return reason.empty() ? "(no reason header)" : reason;
}

// Every message of `topic` from each partition's low to its high watermark (as of the call),
// with headers, without a consumer group, by (partition, offset). An unknown topic yields no
// messages.
Result<std::vector<DeadLetter>> ReadDeadLetters(const std::string& brokers,
                                                const std::string& topic, int timeout_ms) {
  auto records = kafka::ReadTopicToEnd(brokers, topic, timeout_ms, {{"log_level", "3"}});
  if (!records) return std::unexpected(records.error());
  std::vector<DeadLetter> out;
  out.reserve(records->size());
  for (kafka::Record& r : *records) {
    out.push_back(DeadLetter{.partition = r.partition,
                             .offset = r.offset,
                             .key = std::move(r.key),
                             .payload = std::move(r.value),
                             .reason = r.Header(kafka::kDeadLetterReasonHeader),
                             .source_topic = r.Header(kafka::kDeadLetterSourceTopicHeader),
                             .source_partition = r.Header(kafka::kDeadLetterSourcePartitionHeader),
                             .source_offset = r.Header(kafka::kDeadLetterSourceOffsetHeader)});
  }
  std::sort(out.begin(), out.end(), [](const DeadLetter& a, const DeadLetter& b) {
    return std::pair(a.partition, a.offset) < std::pair(b.partition, b.offset);
  });
  return out;
}

std::string Source(const DeadLetter& d) {
  if (d.source_topic.empty()) return "-";
  return d.source_topic + ":" + d.source_partition + ":" + d.source_offset;
}

// --- list ---------------------------------------------------------------------------------------

int RunList(const DlqArgs& a) {
  auto brokers = Brokers(a);
  if (!brokers) {
    std::fprintf(stderr, "tally dlq: %s\n", brokers.error().message.c_str());
    return 2;
  }
  auto letters = ReadDeadLetters(*brokers, a.topic, a.timeout_s * 1000);
  if (!letters) {
    std::fprintf(stderr, "tally dlq: %s\n", letters.error().message.c_str());
    return 1;
  }
  std::vector<const DeadLetter*> shown;
  for (const DeadLetter& d : *letters) {
    if (a.reason.empty() || d.reason.find(a.reason) != std::string::npos) shown.push_back(&d);
  }
  std::map<std::string, int64_t> by_reason;
  for (const DeadLetter* d : shown) ++by_reason[ReasonKey(d->reason)];

  if (a.raw) {  // payloads only, one per line: a starting point for a --fixed file
    for (const DeadLetter* d : shown) std::printf("%s\n", d->payload.c_str());
    return 0;
  }
  if (a.json) {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("topic").String(a.topic);
    w.Key("count").Int(static_cast<int64_t>(shown.size()));
    w.Key("dead_letters").BeginArray();
    for (const DeadLetter* d : shown) {
      w.BeginObject();
      w.Key("partition").Int(d->partition);
      w.Key("offset").Int(d->offset);
      w.Key("reason").String(d->reason);
      w.Key("source_topic").String(d->source_topic);
      w.Key("source_partition").String(d->source_partition);
      w.Key("source_offset").String(d->source_offset);
      w.Key("key").String(d->key);
      w.Key("payload").String(d->payload);
      w.EndObject();
    }
    w.EndArray();
    w.Key("by_reason").BeginObject();
    for (const auto& [reason, n] : by_reason) {
      w.Key(reason).Int(n);
    }
    w.EndObject();
    w.EndObject();
    std::printf("%s\n", out.c_str());
    return 0;
  }
  for (const DeadLetter* d : shown) {
    std::printf("%s:%d:%lld  from %s\n  reason:  %s\n  payload: %s\n", a.topic.c_str(),
                d->partition, static_cast<long long>(d->offset), Source(*d).c_str(),
                d->reason.empty() ? "(no reason header)" : d->reason.c_str(),
                Excerpt(d->payload, a.full ? 0 : 160).c_str());
  }
  std::printf("%s%zu dead letter%s", shown.empty() ? "" : "\n", shown.size(),
              shown.size() == 1 ? "" : "s");
  if (!a.reason.empty()) {
    std::printf(" with a reason containing \"%s\" (of %zu)", a.reason.c_str(), letters->size());
  }
  std::printf(" in %s\n", a.topic.c_str());
  if (!by_reason.empty()) {
    std::vector<std::pair<int64_t, std::string>> rows;
    for (const auto& [reason, n] : by_reason) rows.emplace_back(-n, reason);
    std::sort(rows.begin(), rows.end());
    std::printf("by reason:\n");
    for (const auto& [n, reason] : rows) {
      std::printf("  %6lld  %s\n", static_cast<long long>(-n), reason.c_str());
    }
  }
  return 0;
}

// --- redrive ------------------------------------------------------------------------------------

// "0:12,0:15,1:3" -> {(0,12), (0,15), (1,3)}.
Result<std::set<std::pair<int32_t, int64_t>>> ParseOffsets(const std::string& text) {
  std::set<std::pair<int32_t, int64_t>> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item(TrimWhitespace(std::string_view(text).substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos)));
    size_t colon = item.find(':');
    Result<int64_t> p = Fail(ErrorCode::kInvalidArgument, "no partition");
    Result<int64_t> o = Fail(ErrorCode::kInvalidArgument, "no offset");
    if (colon != std::string::npos) {
      p = ParseInt64(std::string_view(item).substr(0, colon), 0, INT32_MAX, "partition");
      o = ParseInt64(std::string_view(item).substr(colon + 1), 0, INT64_MAX, "offset");
    }
    if (!p || !o) {
      return Fail(ErrorCode::kInvalidArgument,
                  "--offsets expects PARTITION:OFFSET[,PARTITION:OFFSET...] (e.g. 0:12,0:15), "
                  "got '" +
                      item + "'",
                  "offsets");
    }
    out.emplace(static_cast<int32_t>(*p), *o);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// Non-empty lines of an NDJSON file.
Result<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open --fixed file " + path, "fixed");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (TrimWhitespace(line).empty()) continue;
    out.push_back(line);
  }
  return out;
}

struct Outgoing {
  std::string what;  // "usage-events.dlq:0:12" or "fixed.ndjson line 3"
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string problem;  // why the current parser rejects it ("" = valid)
  std::string event;    // "source=.. id=.. time=.." when it parses
};

// The dead letters `a` selects (--offsets, --reason or --all) into `selected`. An exit code
// when the command ends here (a bad --offsets, a failed read, an offset with no dead letter,
// nothing selected); nullopt to go on.
std::optional<int> SelectDeadLetters(const DlqArgs& a, const std::string& brokers,
                                     std::vector<DeadLetter>* selected) {
  std::set<std::pair<int32_t, int64_t>> wanted;
  if (!a.offsets.empty()) {
    auto o = ParseOffsets(a.offsets);
    if (!o) {
      std::fprintf(stderr, "tally dlq redrive: %s\n", o.error().message.c_str());
      return 2;
    }
    wanted = std::move(*o);
  }
  auto letters = ReadDeadLetters(brokers, a.topic, a.timeout_s * 1000);
  if (!letters) {
    std::fprintf(stderr, "tally dlq: %s\n", letters.error().message.c_str());
    return 1;
  }
  for (DeadLetter& d : *letters) {
    const bool pick = a.all ||
                      (!a.reason.empty() && d.reason.find(a.reason) != std::string::npos) ||
                      wanted.erase({d.partition, d.offset}) > 0;
    if (pick) selected->push_back(std::move(d));
  }
  if (!wanted.empty()) {
    std::string missing;
    for (auto [p, o] : wanted) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(p) + ":" + std::to_string(o);
    }
    std::fprintf(stderr, "tally dlq redrive: no dead letter at %s in %s (see `tally dlq list`)\n",
                 missing.c_str(), a.topic.c_str());
    return 1;
  }
  if (selected->empty()) {
    std::printf("no dead letter selected in %s: nothing to redrive\n", a.topic.c_str());
    return 0;
  }
  return std::nullopt;
}

// What to send into `out`: the selected dead letters' payloads, or the lines of --fixed (one
// per selected dead letter, in `tally dlq list` order, when `has_selection`). An exit code when
// --fixed cannot be used; nullopt to go on.
std::optional<int> BuildOutgoing(const DlqArgs& a, bool has_selection,
                                 const std::vector<DeadLetter>& selected,
                                 std::vector<Outgoing>* out) {
  if (a.fixed.empty()) {
    for (const DeadLetter& d : selected) {
      Outgoing o;
      o.what = a.topic + ":" + std::to_string(d.partition) + ":" + std::to_string(d.offset);
      o.key = d.key;
      o.value = d.payload;
      o.headers.emplace_back(std::string(kafka::kRedriveOfHeader), o.what);
      out->push_back(std::move(o));
    }
    return std::nullopt;
  }
  auto lines = ReadLines(a.fixed);
  if (!lines) {
    std::fprintf(stderr, "tally dlq redrive: %s\n", lines.error().message.c_str());
    return 2;
  }
  if (has_selection && lines->size() != selected.size()) {
    std::fprintf(stderr,
                 "tally dlq redrive: --fixed %s has %zu line(s) but %zu dead letter(s) are "
                 "selected; give one corrected line per selected dead letter, in the order "
                 "of `tally dlq list`, or leave the selection out to send every line\n",
                 a.fixed.c_str(), lines->size(), selected.size());
    return 2;
  }
  for (size_t i = 0; i < lines->size(); ++i) {
    Outgoing o;
    o.what = a.fixed + " line " + std::to_string(i + 1);
    o.value = (*lines)[i];
    if (has_selection) {
      const DeadLetter& d = selected[i];
      o.what += " (for " + a.topic + ":" + std::to_string(d.partition) + ":" +
                std::to_string(d.offset) + ")";
      o.headers.emplace_back(
          std::string(kafka::kRedriveOfHeader),
          a.topic + ":" + std::to_string(d.partition) + ":" + std::to_string(d.offset));
    }
    out->push_back(std::move(o));
  }
  return std::nullopt;
}

// Parses every outgoing event with tallyd's parser: valid ones get the workspace key and a
// description, invalid ones their problem. Returns how many are invalid.
size_t CheckOutgoing(std::vector<Outgoing>* out) {
  event::EventParser parser;
  event::UsageEvent ev;
  size_t invalid = 0;
  for (Outgoing& o : *out) {
    if (Status s = parser.ParseInto(o.value, &ev); !s) {
      o.problem = s.error().message;
      ++invalid;
    } else {
      o.key = ev.workspace_id;  // the topic's key: a workspace's events stay in one partition
      o.event = "source=" + ev.source + " id=" + ev.id + " time=" + FormatRfc3339Millis(ev.time_ms);
    }
  }
  return invalid;
}

// Produces `out` to --to (or only prints it with --dry-run) and says what was done.
int SendOutgoing(const DlqArgs& a, const std::string& brokers, const std::vector<Outgoing>& out) {
  std::unique_ptr<kafka::Producer> producer;
  if (!a.dry_run) {
    kafka::ProducerOptions po;
    po.brokers = brokers;
    po.idempotent = true;
    auto p = kafka::Producer::Create(po);
    if (!p) {
      std::fprintf(stderr, "tally dlq redrive: %s\n", p.error().message.c_str());
      return 1;
    }
    producer = std::move(*p);
  }
  const char* verb = a.dry_run ? "would send" : "sent";
  for (const Outgoing& o : out) {
    if (producer) {
      if (Status s = producer->Produce(a.to, o.key, o.value, o.headers); !s) {
        std::fprintf(stderr, "tally dlq redrive: %s: %s\n", o.what.c_str(),
                     s.error().message.c_str());
        return 1;
      }
    }
    const std::string detail =
        o.problem.empty() ? o.event : "(still invalid, --force) " + Excerpt(o.value, 120);
    std::printf("%s %s -> %s  %s\n", verb, o.what.c_str(), a.to.c_str(), detail.c_str());
  }
  if (producer) {
    if (Status s = producer->Flush(a.timeout_s * 1000); !s) {
      std::fprintf(stderr,
                   "tally dlq redrive: delivery failed: %s (some events may have been "
                   "sent; redriving again is safe: tallyd dedupes by (source, id))\n",
                   s.error().message.c_str());
      return 1;
    }
  }
  if (a.dry_run) {
    std::printf("dry run: %zu event%s would be sent to %s; nothing was sent\n", out.size(),
                out.size() == 1 ? "" : "s", a.to.c_str());
  } else {
    std::printf("redriven %zu event%s to %s\n", out.size(), out.size() == 1 ? "" : "s",
                a.to.c_str());
  }
  return 0;
}

int RunRedrive(const DlqArgs& a) {
  const int selections = (a.offsets.empty() ? 0 : 1) + (a.reason.empty() ? 0 : 1) + (a.all ? 1 : 0);
  if (selections > 1) {
    std::fprintf(stderr, "tally dlq redrive: give only one of --offsets, --reason, --all\n");
    return 2;
  }
  if (selections == 0 && a.fixed.empty()) {
    std::fprintf(stderr,
                 "tally dlq redrive: select dead letters with --offsets, --reason or --all, or "
                 "give corrected events with --fixed FILE (see --help)\n");
    return 2;
  }
  auto brokers = Brokers(a);
  if (!brokers) {
    std::fprintf(stderr, "tally dlq: %s\n", brokers.error().message.c_str());
    return 2;
  }
  // The selected dead letters (none when only --fixed is given).
  std::vector<DeadLetter> selected;
  if (selections == 1) {
    if (auto rc = SelectDeadLetters(a, *brokers, &selected)) return *rc;
  }
  std::vector<Outgoing> out;
  if (auto rc = BuildOutgoing(a, selections == 1, selected, &out)) return *rc;
  const size_t invalid = CheckOutgoing(&out);
  if (invalid > 0 && !a.force) {
    std::fprintf(stderr, "tally dlq redrive: %zu of %zu events would be rejected again:\n", invalid,
                 out.size());
    for (const Outgoing& o : out) {
      if (!o.problem.empty()) {
        std::fprintf(stderr, "  %s: %s\n", o.what.c_str(), o.problem.c_str());
      }
    }
    std::fprintf(stderr,
                 "nothing was sent. Correct them (tally dlq list --raw gives the payloads) and "
                 "pass --fixed FILE, or --force to send them anyway.\n");
    return 1;
  }
  return SendOutgoing(a, *brokers, out);
}

void AddBrokerOptions(CLI::App* sub, DlqArgs* a) {
  auto* b = sub->add_option("-b,--brokers", a->brokers, "bootstrap.servers, e.g. 127.0.0.1:9092");
  auto* f =
      sub->add_option("--broker-addr-file", a->broker_addr_file,
                      "Read the bootstrap address from this file (e.g. <data-dir>/broker.addr)");
  b->excludes(f);
  f->excludes(b);
  sub->add_option("--topic", a->topic, "Dead-letter topic")->capture_default_str();
  sub->add_option("--timeout", a->timeout_s, "Seconds to wait for the brokers")
      ->check(IntIn(1, 86'400))
      ->capture_default_str();
}

}  // namespace

Command AddDlqCommand(CLI::App& app) {
  auto a = std::make_shared<DlqArgs>();
  CLI::App* dlq = app.add_subcommand(
      "dlq",
      "Inspect and redrive dead letters: messages tallyd could not ingest, kept in the "
      "dead-letter topic with the reason in a header.");
  dlq->require_subcommand(1);

  CLI::App* list = dlq->add_subcommand(
      "list",
      "List dead letters (partition, offset, reason, source, payload) and a count by reason.");
  AddBrokerOptions(list, a.get());
  list->add_option("--reason", a->reason, "Only dead letters whose reason contains SUBSTR");
  auto* json = list->add_flag("--json", a->json, "One JSON document (every field, whole payloads)");
  auto* raw = list->add_flag("--raw", a->raw,
                             "Payloads only, one per line: a starting point for a --fixed file");
  json->excludes(raw);
  list->add_flag("--full", a->full, "Print whole payloads (default: the first 160 bytes)");
  list->footer(
      "Examples:\n"
      "  tally dlq list --broker-addr-file ./data/broker.addr\n"
      "  tally dlq list --brokers kafka:9092 --reason 'data.tokens'\n"
      "  tally dlq list --brokers kafka:9092 --reason time --raw > broken.ndjson");

  CLI::App* redrive = dlq->add_subcommand(
      "redrive",
      "Produce dead letters again to the main topic: their payloads unchanged (--offsets, "
      "--reason, --all), or corrected events (--fixed FILE). tallyd dedupes by (source, id), so "
      "redriving twice counts an event once.");
  AddBrokerOptions(redrive, a.get());
  redrive->add_option("--offsets", a->offsets,
                      "Dead letters at PARTITION:OFFSET[,PARTITION:OFFSET...] of the dead-letter "
                      "topic (as `tally dlq list` prints them)");
  redrive->add_option("--reason", a->reason, "Dead letters whose reason contains SUBSTR");
  redrive->add_flag("--all", a->all, "Every dead letter");
  redrive
      ->add_option("--fixed", a->fixed,
                   "NDJSON file of corrected events to send instead: one line per selected dead "
                   "letter (in `tally dlq list` order), or, without a selection, every line")
      ->check(CLI::ExistingFile);
  redrive->add_option("--to", a->to, "Topic to produce to")->capture_default_str();
  redrive->add_flag("--dry-run", a->dry_run, "Print what would be sent; send nothing");
  redrive->add_flag("--force", a->force,
                    "Send events the current parser still rejects (they will be dead-lettered "
                    "again)");
  redrive->footer(
      "Every event is checked with tallyd's parser first; if any would be rejected again, "
      "nothing is sent (unless --force). Messages are keyed by data.workspace_id and sent with "
      "an idempotent producer; each carries a tally-redrive-of header naming its dead letter.\n\n"
      "Examples:\n"
      "  # after an upgrade that accepts them, send two dead letters again as they are:\n"
      "  tally dlq redrive --brokers kafka:9092 --offsets 0:12,0:15\n"
      "  # correct the events refused for their time, then send the corrected lines:\n"
      "  tally dlq list --brokers kafka:9092 --reason time --raw > broken.ndjson\n"
      "  $EDITOR broken.ndjson\n"
      "  tally dlq redrive --brokers kafka:9092 --reason time --fixed broken.ndjson --dry-run\n"
      "  tally dlq redrive --brokers kafka:9092 --reason time --fixed broken.ndjson\n"
      "  # send a file of corrected events, no selection:\n"
      "  tally dlq redrive --broker-addr-file ./data/broker.addr --fixed fixed.ndjson");

  dlq->footer(
      "Examples:\n"
      "  tally dlq list --broker-addr-file ./data/broker.addr\n"
      "  tally dlq redrive --broker-addr-file ./data/broker.addr --all --dry-run\n"
      "Run `tally dlq list --help` / `tally dlq redrive --help` for more.");
  auto check_brokers = [a] {
    if (a->brokers.empty() && a->broker_addr_file.empty()) {
      throw CLI::RequiredError("--brokers or --broker-addr-file");
    }
  };
  list->callback(check_brokers);
  redrive->callback(check_brokers);
  return {dlq, [a, list] { return list->parsed() ? RunList(*a) : RunRedrive(*a); }};
}

}  // namespace tally::cli
