#pragma once
// The subcommands of the `tally` CLI. Each Add*Command registers its subcommand (options and
// help) on `app` and returns it with the function that runs it once parsed (-> exit code).
// Adding a subcommand = one new *_cmd.cpp file, one declaration here, one line in main.cpp.

#include <CLI/CLI.hpp>
#include <functional>

namespace tally::cli {

struct Command {
  CLI::App* app = nullptr;  // the subcommand, owned by the parent app
  std::function<int()> run;
};

Command AddBrokerCommand(CLI::App& app);
Command AddGenCommand(CLI::App& app);
Command AddProduceCommand(CLI::App& app);
Command AddKeysCommand(CLI::App& app);
Command AddReplayCommand(CLI::App& app);
Command AddSnapshotCommand(CLI::App& app);
Command AddDlqCommand(CLI::App& app);

}  // namespace tally::cli
