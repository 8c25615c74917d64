// tally gen: deterministic synthetic usage events as NDJSON.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli_flags.h"
#include "commands.h"
#include "gen/generator.h"

namespace tally::cli {
namespace {

struct GenArgs {
  gen::GenOptions options;
  std::string mix = "default";
  std::string output = "-";
  // The options a mix gives its own defaults, with where they are stored: a mix's default
  // applies only when the flag was not given.
  std::vector<std::pair<CLI::Option*, int gen::GenOptions::*>> mix_sized;
};

int RunGen(GenArgs& args) {
  auto mix = gen::ParseMix(args.mix);
  if (!mix) {
    std::fprintf(stderr, "tally gen: %s\n", mix.error().message.c_str());
    return 2;
  }
  args.options.mix = *mix;
  const gen::GenOptions defaults = gen::MixDefaults(*mix);
  for (const auto& [flag, field] : args.mix_sized) {
    if (flag->count() == 0) args.options.*field = defaults.*field;
  }
  if (auto st = gen::ValidateGenOptions(args.options); !st) {
    std::fprintf(stderr, "tally gen: %s\n", st.error().message.c_str());
    return 2;
  }
  const bool to_stdout = args.output.empty() || args.output == "-";
  FILE* out = to_stdout ? stdout : std::fopen(args.output.c_str(), "wb");
  if (out == nullptr) {
    std::fprintf(stderr, "tally gen: cannot open %s: %s\n", args.output.c_str(),
                 std::strerror(errno));
    return 1;
  }
  gen::Generator generator(args.options);
  gen::GeneratedLine line;
  std::string chunk;
  chunk.reserve(1 << 20);
  int64_t malformed = 0, duplicates = 0, bytes = 0;
  bool ok = true;
  auto drain = [&] {
    if (!chunk.empty() && std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
      ok = false;
    }
    bytes += static_cast<int64_t>(chunk.size());
    chunk.clear();
  };
  while (ok && generator.Next(&line)) {
    chunk.append(line.json);
    chunk.push_back('\n');
    malformed += line.malformed;
    duplicates += line.duplicate;
    if (chunk.size() >= (1 << 20)) drain();
  }
  drain();
  if (std::fflush(out) != 0) ok = false;
  if (!to_stdout && std::fclose(out) != 0) ok = false;
  if (!ok) {
    std::fprintf(stderr, "tally gen: write failed: %s\n", std::strerror(errno));
    return 1;
  }
  if (!to_stdout) {
    std::fprintf(stderr,
                 "generated %lld events (%lld malformed, %lld duplicates, %lld bytes) ending "
                 "%s into %s\n",
                 static_cast<long long>(generator.produced()), static_cast<long long>(malformed),
                 static_cast<long long>(duplicates), static_cast<long long>(bytes),
                 generator.options().end_day.c_str(), args.output.c_str());
  }
  return 0;
}

}  // namespace

Command AddGenCommand(CLI::App& app) {
  auto args = std::make_shared<GenArgs>();
  gen::GenOptions& o = args->options;
  CLI::App* sub = app.add_subcommand(
      "gen",
      "Write realistic synthetic usage events (CloudEvents, one JSON per line).\n"
      "The output is a pure function of the options: fix --end-day for reproducible files.");
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  sub->add_option("--mix", args->mix,
                  "default: every event type, entities created before use.\n"
                  "executions: every event an agent.executed with every optional field\n"
                  "(organization, project, user and agent profiles, tokens, cost, credits);\n"
                  "unless given, --workspaces 20 --organizations 5 --agents 1000 --workflows 0\n"
                  "--users 10000 (Pareto-skewed activity) --days 90")
      ->check(CLI::IsMember({"default", "executions"}))
      ->capture_default_str();
  sub->add_option("-n,--events", o.events, "Number of lines (duplicates and malformed included)")
      ->check(IntIn(0, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("-s,--seed", o.seed, "Random seed")
      ->check(UintIn(0, std::numeric_limits<uint64_t>::max()))
      ->capture_default_str();
  sub->add_option("--first-id", o.first_id,
                  "Number of the first event id (evt_<seed>_<n>): a second stream with the same "
                  "seed, hence the same workspaces, users and agents, whose ids do not repeat the "
                  "first's")
      ->check(IntIn(0, std::numeric_limits<int64_t>::max() / 2))
      ->capture_default_str();
  CLI::Option* workspaces_flag =
      sub->add_option("--workspaces", o.workspaces, "Number of workspaces")
          ->check(IntIn(1, kIntMax))
          ->capture_default_str();
  CLI::Option* organizations_flag =
      sub->add_option("--organizations", o.organizations, "Number of organizations")
          ->check(IntIn(1, kIntMax))
          ->capture_default_str();
  sub->add_option("--projects", o.projects_per_workspace, "Projects per workspace")
      ->check(IntIn(1, kIntMax))
      ->capture_default_str();
  CLI::Option* users_flag =
      sub->add_option("--users", o.users,
                      "Number of users (Zipf-skewed activity; Pareto in the executions mix)")
          ->check(IntIn(1, kIntMax))
          ->capture_default_str();
  CLI::Option* agents_flag =
      sub->add_option("--agents", o.agents,
                      "Number of agents (default mix: scaled down for small streams)")
          ->check(IntIn(0, kIntMax))
          ->capture_default_str();
  CLI::Option* workflows_flag =
      sub->add_option("--workflows", o.workflows, "Number of workflows (idem)")
          ->check(IntIn(0, kIntMax))
          ->capture_default_str();
  CLI::Option* days_flag = sub->add_option("--days", o.days, "Days of history ending at --end-day")
                               ->check(IntIn(1, kIntMax))
                               ->capture_default_str();
  args->mix_sized = {{workspaces_flag, &gen::GenOptions::workspaces},
                     {organizations_flag, &gen::GenOptions::organizations},
                     {users_flag, &gen::GenOptions::users},
                     {agents_flag, &gen::GenOptions::agents},
                     {workflows_flag, &gen::GenOptions::workflows},
                     {days_flag, &gen::GenOptions::days}};
  sub->add_option("--end-day", o.end_day, "Last day YYYY-MM-DD (default: today UTC)");
  sub->add_option("--duplicates", o.duplicate_fraction,
                  "Fraction of lines that repeat an earlier event verbatim (same source+id)")
      ->capture_default_str()
      ->check(NumberIn(0, 1));
  sub->add_option("--malformed", o.malformed_fraction,
                  "Fraction of malformed lines (every kind of rejection, round-robin)")
      ->capture_default_str()
      ->check(NumberIn(0, 1));
  sub->add_flag("--bare-executions", o.bare_executions,
                "agent.executed and workflow.executed lines name the entity by id only (no name, "
                "visibility or owner), as producers that do not track them send them");
  sub->add_option("-o,--output", args->output, "Output file ('-' = stdout)")->capture_default_str();
  sub->footer(
      "Examples:\n"
      "  tally gen --events 10 | head -1\n"
      "  tally gen -n 1000000 --end-day 2026-01-31 --days 90 -o events.ndjson\n"
      "  tally gen -n 100000 --duplicates 0.01 --malformed 0.005 | tally produce --brokers "
      "127.0.0.1:9092\n"
      "  tally gen -n 1000000 --mix executions --end-day 2026-01-31 -o executions.ndjson");
  return {sub, [args] { return RunGen(*args); }};
}

}  // namespace tally::cli
