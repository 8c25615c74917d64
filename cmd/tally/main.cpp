// tally: the companion CLI of tallyd (embedded broker, synthetic events, producing to Kafka).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "cli_flags.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "tally: companion tools for tallyd.\n\n"
      "Examples:\n"
      "  tally broker --addr-file /tmp/broker.addr &\n"
      "  tally gen --events 100000 --malformed 0.01 -o events.ndjson\n"
      "  tally produce --broker-addr-file /tmp/broker.addr events.ndjson\n"
      "  tally gen --events 1000000 | tally produce --brokers 127.0.0.1:9092 --rate 50000\n"
      "  tally keys new --name dash --workspace WS_ID=owner --append config/keys.toml\n"
      "  tally replay --mode rebuild --data-dir ./data events.ndjson.zst --from-topic \\\n"
      "      --broker-addr-file ./data/broker.addr --tallyd http://127.0.0.1:8080 --token T\n"
      "  tally snapshot --tallyd http://127.0.0.1:8080 --token T --out /backups/tally-1\n"
      "  tally dlq list --broker-addr-file ./data/broker.addr\n"};
  app.require_subcommand(1);
  // Logs (librdkafka's included) go to stderr; stdout carries data and addresses only.
  spdlog::set_default_logger(spdlog::stderr_color_mt("tally"));
  spdlog::set_level(spdlog::level::warn);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log librdkafka and tally details on stderr.");

  const std::vector<tally::cli::Command> commands = {
      tally::cli::AddBrokerCommand(app),  tally::cli::AddGenCommand(app),
      tally::cli::AddProduceCommand(app), tally::cli::AddKeysCommand(app),
      tally::cli::AddReplayCommand(app),  tally::cli::AddSnapshotCommand(app),
      tally::cli::AddDlqCommand(app),
  };

  if (auto rc = tally::cli::ParseCommandLine(app, argc, argv)) return *rc;
  if (verbose) spdlog::set_level(spdlog::level::debug);
  try {
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
  } catch (const std::exception& e) {  // last resort: lib/ reports errors as values
    spdlog::critical("tally: unexpected failure: {}", e.what());
    return 70;
  }
  return 64;
}
