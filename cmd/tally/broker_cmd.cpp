// tally broker: a standalone embedded Kafka-protocol broker for tests and demos.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli_flags.h"
#include "commands.h"
#include "kafka/embedded_broker.h"

namespace tally::cli {
namespace {

struct BrokerArgs {
  int partitions = kafka::kDefaultEmbeddedPartitions;
  std::string topic = "usage-events";
  std::string addr_file;
  int brokers = 1;
};

// Readers poll the file, so it must appear whole: write a sibling temp file, then rename.
bool WriteAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content << '\n';
    out.flush();
    if (!out) return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

int RunBroker(const BrokerArgs& args) {
  // Block the signals before librdkafka starts its threads (they inherit the mask), so that
  // sigwait() below is the only place that sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  kafka::EmbeddedBrokerOptions options;
  options.brokers = args.brokers;
  options.topics = {
      {args.topic, args.partitions}, {args.topic + ".dlq", 1}, {args.topic + ".cluster", 1}};
  auto broker = kafka::EmbeddedBroker::Start(options);
  if (!broker) {
    std::fprintf(stderr, "tally broker: %s\n", broker.error().message.c_str());
    return 1;
  }
  const std::string& bootstrap = (*broker)->bootstrap();
  std::printf("broker listening on %s\n", bootstrap.c_str());
  std::fflush(stdout);
  if (!args.addr_file.empty() && !WriteAtomically(args.addr_file, bootstrap)) {
    std::fprintf(stderr, "tally broker: cannot write %s\n", args.addr_file.c_str());
    return 1;
  }
  std::fprintf(stderr,
               "topics: %s (%d partitions), %s.dlq and %s.cluster (1 partition each); %s. "
               "Ctrl-C to stop\n",
               args.topic.c_str(), args.partitions, args.topic.c_str(), args.topic.c_str(),
               kafka::EmbeddedBroker::RetentionSummary(args.topic, args.partitions).c_str());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "tally broker: stopping on signal %d\n", sig);
  if (!args.addr_file.empty()) std::remove(args.addr_file.c_str());
  broker->reset();
  return 0;
}

}  // namespace

Command AddBrokerCommand(CLI::App& app) {
  auto args = std::make_shared<BrokerArgs>();
  CLI::App* sub = app.add_subcommand(
      "broker",
      "Run an embedded Kafka-protocol broker (librdkafka's mock cluster) until SIGINT/SIGTERM.\n"
      "For trying tally out, demos and tests, not production: it keeps everything in memory and\n"
      "nothing across restarts, trims each partition to its newest 5 MiB (160 MiB in all with\n"
      "the default 32 partitions; also at most 100k batches) and gets a new cluster id every run.\n"
      "`tally produce` and tallyd's POST /v1/events hold back on this broker so that events\n"
      "tallyd has not read yet are not trimmed. For more than a few hundred MB waiting to be\n"
      "read, for data that must survive a restart, or for several producers of your own, run\n"
      "tallyd against a Kafka cluster (tallyd --brokers HOST:PORT).");
  sub->add_option("-p,--partitions", args->partitions,
                  "Partitions of the events topic (each keeps its newest 5 MiB)")
      ->capture_default_str()
      ->check(IntIn(1, 1024));
  sub->add_option("-t,--topic", args->topic,
                  "Events topic; '<topic>.dlq' (1 partition) is created too")
      ->capture_default_str();
  sub->add_option("--addr-file", args->addr_file,
                  "Also write the bootstrap address to this file (atomically; removed on exit)");
  sub->add_option("--brokers", args->brokers, "Number of mock brokers in the cluster")
      ->capture_default_str()
      ->check(IntIn(1, 16));
  sub->footer(
      "Prints 'broker listening on HOST:PORT' on stdout once ready.\n\n"
      "Examples:\n"
      "  tally broker\n"
      "  tally broker --partitions 8 --addr-file /tmp/tally-broker.addr &\n"
      "  kcat -b $(cat /tmp/tally-broker.addr) -L");
  return {sub, [args] { return RunBroker(*args); }};
}

}  // namespace tally::cli
