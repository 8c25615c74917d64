#pragma once
// Command-line plumbing shared by tallyd and tally: CLI11 validators built on the checked
// parsers of lib/common/parse.h, and the one mapping of usage errors to exit status 2.
//
//   app.add_option("--partitions", partitions)->check(tally::cli::IntIn(1, 1024));
//   app.add_option("--listen", listen)->check(tally::cli::HostPortSpec(/*allow_zero_port=*/true));
//   if (auto rc = tally::cli::ParseCommandLine(app, argc, argv)) return *rc;
//
// Validators see the text of a value before CLI11 converts it, from the command line and from a
// --config file alike, so "-1" never wraps into a size_t and "nan" never passes a range. CLI11
// reports a refused value as "--flag: <why>" on stderr.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "common/parse.h"

namespace tally::cli {

// Exit status of a usage error: a bad flag, a bad value, a missing argument.
inline constexpr int kUsageExit = 2;

// A plain decimal integer in [min, max].
inline CLI::Validator IntIn(int64_t min, int64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        auto r = ParseInt64(s, min, max, "");
        return r ? std::string() : r.error().message;
      },
      "INT in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
}

// A plain decimal unsigned integer in [min, max] ("-1" is refused, not wrapped).
inline CLI::Validator UintIn(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        auto r = ParseUint64(s, min, max, "");
        return r ? std::string() : r.error().message;
      },
      "UINT in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
}

// A finite decimal number in [min, max].
inline CLI::Validator NumberIn(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        auto r = ParseDouble(s, min, max, "");
        return r ? std::string() : r.error().message;
      },
      "NUMBER");
}

// HOST:PORT or [IPV6]:PORT, port 1..65535 (0 too with allow_zero_port).
inline CLI::Validator HostPortSpec(bool allow_zero_port) {
  return CLI::Validator(
      [allow_zero_port](std::string& s) -> std::string {
        auto r = ParseHostPort(s, allow_zero_port, "");
        return r ? std::string() : r.error().message;
      },
      "HOST:PORT");
}

// Parses the command line (and the --config file, if the app has one). nullopt: go on.
// Otherwise the process should exit with the returned status: 0 after --help, kUsageExit after
// a usage error (CLI11's message, naming the flag, is already on stderr).
inline std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageExit;
  }
  return std::nullopt;
}

}  // namespace tally::cli
