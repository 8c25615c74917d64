// The real tallyd and tally binaries given bad numeric flags and addresses (on the command line
// and in a --config file): each run must end by itself with exit status 2 (never a signal such
// as SIGABRT from an uncaught exception) and a message on stderr naming the flag.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

namespace tally::integration {
namespace {

struct BadFlagCase {
  bool tallyd;                    // else tally
  std::vector<std::string> args;  // after the binary
  std::string flag;               // expected on stderr
};

class CliFlagsTest : public ::testing::Test {
 protected:
  // Runs the case; checks exit status 2 and that stderr names the flag.
  void ExpectUsageError(const BadFlagCase& c) {
    std::vector<std::string> argv = {c.tallyd ? TallydBinary() : TallyBinary()};
    ASSERT_FALSE(argv[0].empty()) << "binary not built";
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const std::string log = dir_.File("run" + std::to_string(++runs_));
    Process p;
    ASSERT_TRUE(p.Start(argv, log));
    auto status = p.Wait(Millis(20'000));
    ASSERT_TRUE(status) << p.CommandLine() << ": still running\n" << p.LogTail();
    const std::string err = ReadFileOrEmpty(log + ".err");
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2)
        << p.CommandLine() << ": " << p.Describe() << "\n"
        << p.LogTail();
    EXPECT_NE(err.find(c.flag), std::string::npos)
        << p.CommandLine() << ": stderr does not name " << c.flag << ":\n"
        << err;
    EXPECT_EQ(err.find("terminate called"), std::string::npos) << err;
  }

  TempDir dir_;
  int runs_ = 0;
};

TEST_F(CliFlagsTest, TallydListenAddressIsChecked) {
  const std::string data = dir_.File("data");
  for (const char* listen :
       {"127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1", "127.0.0.1:80x"}) {
    SCOPED_TRACE(listen);
    ExpectUsageError({true, {"--listen", listen, "--data-dir", data}, "--listen"});
  }
}

TEST_F(CliFlagsTest, TallydNumericFlagsAreChecked) {
  const std::string data = dir_.File("data");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--cache-ttl", "-1"},
      {"--cache-ttl", "abc"},
      {"--cache-max-bytes", "-1"},
      {"--cache-max-bytes", "64MiB"},
      {"--http-threads", "0"},
      {"--partitions", "0"},
      {"--dedupe-window-days", "nan"},
      {"--batch-max", "1e3"},
      {"--http-ingest-max-bytes", "-1"},  // would wrap to SIZE_MAX
      {"--http-ingest-max-events", "0"},
      {"--http-ingest-timeout-ms", "x"},
      {"--http-ingest-max-concurrent", "-3"},
      {"--group-join", "never"},
  };
  for (const auto& [flag, value] : cases) {
    SCOPED_TRACE(flag + " " + value);
    ExpectUsageError({true, {flag, value, "--data-dir", data}, flag});
  }
}

TEST_F(CliFlagsTest, TallydConfigFileValuesAreChecked) {
  const std::string config = dir_.File("tallyd.toml");
  {
    std::ofstream out(config);
    out << "listen = \"127.0.0.1:abc\"\n";
  }
  ExpectUsageError({true, {"--config", config, "--data-dir", dir_.File("data")}, "--listen"});
  {
    std::ofstream out(config, std::ios::trunc);
    out << "http-threads = -4\n";
  }
  ExpectUsageError({true, {"--config", config, "--data-dir", dir_.File("data")}, "--http-threads"});
  {
    std::ofstream out(config, std::ios::trunc);
    out << "cache-max-bytes = -1\n";
  }
  ExpectUsageError(
      {true, {"--config", config, "--data-dir", dir_.File("data")}, "--cache-max-bytes"});
}

TEST_F(CliFlagsTest, TallySubcommandFlagsAreChecked) {
  const std::string data = dir_.File("replay-data");
  const std::vector<BadFlagCase> cases = {
      {false, {"broker", "--partitions", "0"}, "--partitions"},
      {false, {"broker", "--brokers", "x"}, "--brokers"},
      {false, {"gen", "--events", "-5"}, "--events"},
      {false, {"gen", "--seed", "-1"}, "--seed"},
      {false, {"gen", "--duplicates", "nan"}, "--duplicates"},
      {false, {"produce", "--brokers", "127.0.0.1:1", "--rate", "inf"}, "--rate"},
      {false, {"produce", "--brokers", "127.0.0.1:1", "--flush-timeout", "-1"}, "--flush-timeout"},
      {false, {"dlq", "list", "--brokers", "127.0.0.1:1", "--timeout", "0"}, "--timeout"},
      {false, {"dlq", "redrive", "--brokers", "127.0.0.1:1", "--offsets", "0:abc"}, "--offsets"},
      {false,
       {"dlq", "redrive", "--brokers", "127.0.0.1:1", "--offsets", "99999999999:1"},
       "--offsets"},
      {false,
       {"replay", "--data-dir", data, "--from-topic", "--brokers", "127.0.0.1:1", "--start",
        "offsets:0=abc"},
       "--start"},
      {false,
       {"replay", "--data-dir", data, "--from-topic", "--brokers", "127.0.0.1:1", "--start",
        "offsets:x=1"},
       "--start"},
      {false,
       {"replay", "--data-dir", data, "f.ndjson", "--tallyd", "http://127.0.0.1:abc"},
       "--tallyd"},
      {false, {"replay", "--data-dir", data, "f.ndjson", "--batch", "-1"}, "--batch"},
      {false,
       {"snapshot", "--tallyd", "http://127.0.0.1:99999", "--token", "t", "--out", data},
       "--tallyd"},
      {false, {"no-such-command"}, "subcommand"},
  };
  for (const BadFlagCase& c : cases) {
    std::string trace;
    for (const std::string& a : c.args) trace += a + " ";
    SCOPED_TRACE(trace);
    ExpectUsageError(c);
  }
}

}  // namespace
}  // namespace tally::integration
