// tally produce: NDJSON lines to a Kafka topic, keyed by data.workspace_id.
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cli_flags.h"
#include "commands.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "kafka/retention_guard.h"

namespace tally::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ProduceArgs {
  std::string brokers;
  std::string broker_addr_file;
  std::string topic = "usage-events";
  std::vector<std::string> files;
  double rate = 0;
  int flush_timeout_s = 60;
  std::vector<std::string> properties;
  std::string group = "tally";
  bool no_hold_back = false;
};

std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

// The workspace id of an event line, or empty when the line does not get that far in parsing
// (malformed lines are still produced, with a null key, so that tally dead-letters them).
// The returned view points into `parser` and lives until its next use.
std::string_view WorkspaceKey(simdjson::ondemand::parser& parser, std::vector<char>& scratch,
                              std::string_view line) {
  if (scratch.size() < line.size() + simdjson::SIMDJSON_PADDING) {
    scratch.resize(line.size() + simdjson::SIMDJSON_PADDING);
  }
  std::memcpy(scratch.data(), line.data(), line.size());
  simdjson::padded_string_view padded(scratch.data(), line.size(), scratch.size());
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return {};
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return {};
  simdjson::ondemand::object data;
  if (obj["data"].get_object().get(data)) return {};
  std::string_view ws;
  if (data["workspace_id"].get_string().get(ws)) return {};
  return ws;
}

class Progress {
 public:
  Progress() : tty_(::isatty(STDERR_FILENO) == 1), start_(Clock::now()), last_(start_) {}

  // Cheap to call per message: looks at the clock every 256 calls.
  void Tick(int64_t messages, int64_t bytes) {
    if ((messages & 255) != 0) return;
    auto now = Clock::now();
    auto every = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000);
    if (now - last_ < every) return;
    last_ = now;
    Print(messages, bytes, now);
  }
  void Done() {
    if (tty_ && printed_) std::fputc('\n', stderr);
  }
  // Called while held back (see kafka::RetentionGuard) with the guard's reason: the first time
  // in full, then as a short status every so often.
  void Waiting(int64_t messages, int64_t bytes, const std::string& reason) {
    auto now = Clock::now();
    if (!waiting_) {
      waiting_ = true;
      wait_started_ = now;
      if (!explained_) {
        explained_ = true;
        std::fprintf(stderr, "%swaiting for the consumer: %s\n", tty_ && printed_ ? "\n" : "",
                     reason.c_str());
        std::fflush(stderr);
        last_ = now;
        return;
      }
    }
    auto every = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000);
    if (now - last_ < every) return;
    last_ = now;
    Print(messages, bytes, now);
  }
  // Producing goes on after Waiting().
  void Resumed() {
    if (!waiting_) return;
    waiting_ = false;
    held_ += Clock::now() - wait_started_;
  }
  double HeldSeconds() const { return std::chrono::duration<double>(held_).count(); }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  void Print(int64_t messages, int64_t bytes, Clock::time_point now) {
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(messages) / secs : 0;
    std::fprintf(
        stderr, "%s%lld events  %.0f events/s  %.1f MB%s%s", tty_ ? "\r" : "",
        static_cast<long long>(messages), rate, static_cast<double>(bytes) / 1e6,
        waiting_ ? "  (waiting for the consumer)" : (tty_ ? "                            " : ""),
        tty_ ? "" : "\n");
    std::fflush(stderr);
    printed_ = true;
  }

  bool tty_;
  bool printed_ = false;
  bool waiting_ = false;
  bool explained_ = false;
  Clock::time_point start_;
  Clock::time_point last_;
  Clock::time_point wait_started_{};
  Clock::duration held_{};
};

// SIGINT and SIGTERM set g_stop.
void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = &OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns so the loop can stop
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Flushes, prints the summary and returns the exit code.
int Finish(const ProduceArgs& args, kafka::Producer& producer, Progress& progress, int64_t messages,
           int64_t rejected, int exit_code) {
  auto flushed = producer.Flush(args.flush_timeout_s * 1000);
  progress.Done();
  double secs = progress.Seconds();
  if (!flushed) {
    std::fprintf(stderr, "tally produce: %s\n", flushed.error().message.c_str());
  }
  const int64_t failed = producer.failed();
  std::fprintf(stderr, "produced %lld messages (%lld bytes) in %.2f s\n",
               static_cast<long long>(producer.delivered()),
               static_cast<long long>(producer.delivered_bytes()), secs);
  if (progress.HeldSeconds() > 0) {
    std::fprintf(stderr,
                 "held back %.1f s in all waiting for consumer group '%s' (the embedded broker "
                 "keeps only the newest 5 MiB of each partition)\n",
                 progress.HeldSeconds(), args.group.c_str());
  }
  const int64_t undelivered = messages - producer.delivered();
  if (undelivered > 0 || rejected > 0) {
    std::fprintf(stderr,
                 "tally produce: %lld of %lld messages not delivered (%lld failed), %lld lines "
                 "rejected\n",
                 static_cast<long long>(undelivered), static_cast<long long>(messages),
                 static_cast<long long>(failed), static_cast<long long>(rejected));
  }
  if (!flushed || undelivered > 0 || rejected > 0) return 1;
  if (g_stop.load() && exit_code == 0) return 130;
  return exit_code;
}

int RunProduce(const ProduceArgs& args) {
  InstallStopHandlers();
  std::string brokers = args.brokers;
  if (brokers.empty()) {
    // Waits for a concurrently started `tally broker --addr-file`.
    auto address = kafka::ReadBrokerAddressFile(args.broker_addr_file, std::chrono::seconds(30),
                                                [] { return g_stop.load(); });
    if (!address) {
      std::fprintf(stderr, "tally produce: %s\n", address.error().message.c_str());
      return 1;
    }
    brokers = *address;
  }
  kafka::ProducerOptions options;
  options.brokers = brokers;
  for (const std::string& kv : args.properties) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "tally produce: -X expects name=value, got '%s'\n", kv.c_str());
      return 2;
    }
    options.extra[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto producer = kafka::Producer::Create(options);
  if (!producer) {
    std::fprintf(stderr, "tally produce: %s\n", producer.error().message.c_str());
    return 2;
  }
  // On the embedded broker, never run so far ahead of --group that unread events are trimmed.
  std::unique_ptr<kafka::RetentionGuard> guard;
  if (!args.no_hold_back) {
    kafka::RetentionGuardOptions go;
    go.brokers = brokers;
    go.topic = args.topic;
    go.group = args.group;
    go.unacknowledged_messages = [p = producer->get()] { return p->in_flight(); };
    auto g = kafka::RetentionGuard::Create(go);
    if (!g) {
      std::fprintf(stderr, "tally produce: %s\n", g.error().message.c_str());
      return 2;
    }
    guard = std::move(*g);
  }

  std::vector<std::string> inputs = args.files;
  if (inputs.empty()) inputs.push_back("-");
  simdjson::ondemand::parser parser;
  std::vector<char> scratch;
  Progress progress;
  int64_t messages = 0, bytes = 0, rejected = 0;
  const auto start = Clock::now();
  char* buf = nullptr;
  size_t cap = 0;
  int exit_code = 0;

  for (const std::string& input : inputs) {
    if (g_stop.load()) break;
    const bool is_stdin = input == "-";
    FILE* in = is_stdin ? stdin : std::fopen(input.c_str(), "rb");
    if (in == nullptr) {
      std::fprintf(stderr, "tally produce: cannot open %s: %s\n", input.c_str(),
                   std::strerror(errno));
      exit_code = 1;
      break;
    }
    for (;;) {
      ssize_t n = ::getline(&buf, &cap, in);
      if (n < 0) break;
      if (g_stop.load()) break;
      std::string_view line(buf, static_cast<size_t>(n));
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      if (args.rate > 0) {
        auto due = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(messages / args.rate));
        if (due - Clock::now() > std::chrono::milliseconds(1)) std::this_thread::sleep_until(due);
      }
      std::string_view key = WorkspaceKey(parser, scratch, line);
      if (guard) {
        for (;;) {
          Status admitted = guard->Admit(key.size() + line.size());
          if (admitted) break;
          if (g_stop.load()) break;
          progress.Waiting(messages, bytes, admitted.error().message);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        progress.Resumed();
        if (g_stop.load()) break;
      }
      auto st = (*producer)->Produce(args.topic, key, line);
      if (!st) {
        ++rejected;
        std::fprintf(stderr, "%stally produce: line %lld of %s not produced: %s\n",
                     ::isatty(STDERR_FILENO) ? "\n" : "",
                     static_cast<long long>(messages + rejected), input.c_str(),
                     st.error().message.c_str());
        if (st.error().code != ErrorCode::kInvalidArgument) {
          g_stop.store(true);  // the producer itself is broken: stop reading
          break;
        }
        continue;
      }
      ++messages;
      bytes += static_cast<int64_t>(line.size());
      progress.Tick(messages, bytes);
    }
    if (!is_stdin) std::fclose(in);
  }
  std::free(buf);

  return Finish(args, **producer, progress, messages, rejected, exit_code);
}

}  // namespace

Command AddProduceCommand(CLI::App& app) {
  auto args = std::make_shared<ProduceArgs>();
  CLI::App* sub = app.add_subcommand(
      "produce",
      "Produce NDJSON lines to a Kafka topic, one message per line, keyed by data.workspace_id.\n"
      "Lines that do not parse are produced too (with a null key) so tally dead-letters them.");
  auto* brokers =
      sub->add_option("-b,--brokers", args->brokers, "bootstrap.servers, e.g. 127.0.0.1:9092");
  auto* addr = sub->add_option("--broker-addr-file", args->broker_addr_file,
                               "Read the bootstrap address from this file (waits up to 30 s "
                               "for it, e.g. from `tally broker --addr-file`)");
  brokers->excludes(addr);
  addr->excludes(brokers);
  sub->add_option("-t,--topic", args->topic, "Topic")->capture_default_str();
  sub->add_option("--rate", args->rate, "Limit to N events/s (0 = as fast as possible)")
      ->capture_default_str()
      ->check(NumberIn(0, 1e9));
  sub->add_option("--flush-timeout", args->flush_timeout_s,
                  "Seconds to wait for outstanding deliveries at the end")
      ->check(IntIn(0, 86'400))
      ->capture_default_str();
  sub->add_option("-g,--group", args->group,
                  "On the embedded broker: the consumer group (tallyd's --group) whose committed "
                  "offsets producing waits for")
      ->capture_default_str();
  sub->add_flag("--no-hold-back", args->no_hold_back,
                "On the embedded broker: produce as fast as possible even if the broker trims "
                "events the consumer has not read yet");
  sub->add_option("-X,--property", args->properties,
                  "Extra librdkafka producer property name=value (repeatable)");
  sub->add_option("files", args->files, "NDJSON files ('-' or none = stdin)");
  sub->footer(
      "Progress goes to stderr; the exit code is non-zero if any message was not delivered.\n"
      "On the embedded broker (`tally broker`, tallyd's built-in one), which keeps only the\n"
      "newest 5 MiB of each partition, producing pauses while any partition holds about half\n"
      "of that not yet consumed by --group, and says so; nothing changes on a Kafka cluster.\n\n"
      "Examples:\n"
      "  tally produce --brokers 127.0.0.1:9092 events.ndjson\n"
      "  tally gen -n 100000 | tally produce --broker-addr-file /tmp/tally-broker.addr\n"
      "  tally produce -b 127.0.0.1:9092 --rate 1000 -X compression.type=zstd a.ndjson b.ndjson");
  sub->callback([sub, brokers, addr] {
    if (brokers->count() == 0 && addr->count() == 0) {
      throw CLI::RequiredError("--brokers or --broker-addr-file");
    }
  });
  return {sub, [args] { return RunProduce(*args); }};
}

}  // namespace tally::cli
