// Latency benchmark of the eleven GET /v1/analytics/requests/{metric} endpoints at several data
// sizes with the same dimensions (default 1M and 10M generated events, 10,000 users, 1,000
// agents, 90 days): does the cost follow the dimensions touched rather than the events stored?
//
//   requests_bench [--events 1000000,10000000] [--requests 300] [--runs 3]
//
// Per size: `tally gen` events (same seed, users, agents, workspaces and organizations at every
// size) are loaded in-process into <tmp>/<size>/data/db (bench/preload.h: EventParser ->
// Aggregator -> RocksDB in batches of 20,000, like tallyd's ingest, without Kafka), then tallyd
// is started on that data dir with --cache-ttl 0 and --now at noon of --end-day. All sizes are
// served at the same time by their own tallyd, and every request is sent to each of them in
// turn (alternating which goes first), so machine-load drift hits every size alike and the
// size ratio is measured within the same run.
//
// Scopes (headers and parameters of every request):
//   org        key with organizations = [<largest org>], header organization-id: <largest org>
//   org+agent  the same plus agentName=<current name of the org's busiest agent>
// Ranges: 90 days ending at each of --range-ends (default: the last generated day, and three
// days earlier so that the range decomposes into more buckets); requests alternate between them.
// Each run sends --requests requests per (endpoint, scope) and size, shuffled, over one
// keep-alive connection per tallyd. Reported: server-side latency (Server-Timing: app;dur, the
// router's routing + handler time) and client-side latency (send -> last byte), p50/p99 per run
// and their medians over runs, per endpoint x scope x size, and the ratio of the largest size to
// the smallest.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_util.h"
#include "common/calendar.h"
#include "common/sha256.h"
#include "http/router.h"
#include "preload.h"

namespace tb = tally::bench;

namespace {

constexpr const char* kMetrics[] = {
    "total-active-users",        "total-active-projects",     "total-active-agents",
    "average-requests-per-day",  "average-users-per-project", "average-users-per-agent",
    "top-10-agents-by-requests", "top-10-users-by-requests",  "top-10-agents-by-tokens",
    "total-requests-per-day",    "agent-usage-per-user"};
constexpr int kMetricCount = 11;
constexpr const char* kScopes[] = {"org", "org+agent"};
constexpr int kScopeCount = 2;
constexpr const char* kOrgToken = "bench-org-token";

struct AgentStat {
  std::string org;
  int64_t requests = 0;
  std::string name;
  int64_t name_time = INT64_MIN;
};

struct SizeData {
  int64_t events = 0;
  std::string dir;  // <tmp>/<events>
  tb::PreloadStats load;
  std::unordered_map<std::string, int64_t> org_requests;
  std::unordered_map<std::string, AgentStat> agents;  // key: workspace + '\n' + agent id
  std::unique_ptr<tb::TallydOnDir> server;
};

struct Target {
  int metric;
  int scope;
  std::string path;  // same for every size, except the agent name (per-size current name)
  std::vector<std::string> per_size;  // full target per size
};

bool LooksEmpty(int metric, const std::string& body) {
  if (metric == 9) {  // total-requests-per-day: zero-filled, look for a non-zero count
    size_t pos = 0;
    const std::string k = "\"totalRequests\":";
    while ((pos = body.find(k, pos)) != std::string::npos) {
      pos += k.size();
      if (pos < body.size() && body[pos] >= '1' && body[pos] <= '9') return false;
    }
    return true;
  }
  return body.find(":0}") != std::string::npos || body.find(":[]") != std::string::npos;
}

std::string Millions(int64_t n) {
  if (n % 1'000'000 == 0) return std::to_string(n / 1'000'000) + "M";
  if (n % 1'000 == 0) return std::to_string(n / 1'000) + "k";
  return std::to_string(n);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Latency of GET /v1/analytics/requests/{metric} at several data sizes (see "
      "docs/benchmarks.md)."};
  std::vector<int64_t> sizes = {1'000'000, 10'000'000};
  int requests = 300, runs = 3, warmup = 3;
  // The generated dimensions, the same at every size.
  tally::gen::GenOptions world{.workspaces = 20,
                               .organizations = 5,
                               .users = 10'000,
                               .agents = 1'000,
                               .workflows = 200,
                               .end_day = "2026-01-31",
                               .days = 90};
  std::vector<std::string> range_ends;
  std::string tmp_base;
  bool keep = false;
  int ingest_days = 1;
  double ingest_rate = 0;
  app.add_option("--events", sizes, "Data sizes (generated events), comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--requests", requests, "Requests per (endpoint, scope) per run and size")
      ->capture_default_str();
  app.add_option("--runs", runs, "Measurement runs")->capture_default_str();
  app.add_option("--warmup", warmup, "Unmeasured passes over every target before the runs")
      ->capture_default_str();
  tb::AddWorldFlags(&app, &world);
  app.add_option("--range-ends", range_ends,
                 "Last days of the queried 90-day ranges (default: --end-day and 3 days before)")
      ->delimiter(',');
  app.add_option("--tmp", tmp_base, "Parent directory of the data dirs (default $TMPDIR or /tmp)");
  app.add_flag("--keep", keep, "Keep the data dirs and tallyd logs");
  tb::AddBackgroundIngestFlags(&app, &ingest_rate, &ingest_days, "the tallyd of the largest size");
  std::string tallyd_path = TALLYD_PATH;
  app.add_option("--tallyd", tallyd_path,
                 "tallyd binary to measure (default: the one built with this benchmark; e.g. a "
                 "build of another commit, for before/after comparisons)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  auto end = tally::ParseDay(world.end_day);
  if (!end) {
    std::fprintf(stderr, "--end-day: %s\n", end.error().message.c_str());
    return 2;
  }
  if (range_ends.empty()) range_ends = {world.end_day, tally::FormatDay(*end - 3)};
  std::vector<std::pair<std::string, std::string>> ranges;  // (startDate, endDate)
  for (const std::string& r : range_ends) {
    auto d = tally::ParseDay(r);
    if (!d) {
      std::fprintf(stderr, "--range-ends %s: %s\n", r.c_str(), d.error().message.c_str());
      return 2;
    }
    ranges.push_back({tally::FormatDay(*d - 89), r});
  }

  const auto wall0 = tb::SteadyClock::now();
  std::printf("# requests_bench\n\nmachine: %s\nload average before: %s\n",
              tb::MachineSummary().c_str(), tb::LoadAverage().c_str());
  std::printf(
      "data: %d users, %d agents, %d workflows, %d workspaces, %d organizations, %d days ending "
      "%s, seed 42\n",
      world.users, world.agents, world.workflows, world.workspaces, world.organizations, world.days,
      world.end_day.c_str());
  std::fflush(stdout);

  if (!tmp_base.empty()) setenv("TMPDIR", tmp_base.c_str(), 1);
  tb::TempDir tmp("tally-requests-bench-");
  if (keep) tmp.keep();

  // ---------------------------------------------------------------- load every size
  std::vector<SizeData> data(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    SizeData& d = data[i];
    d.events = sizes[i];
    d.dir = tmp.path() + "/" + std::to_string(d.events);
    tb::PreloadOptions po;
    po.gen = world;
    po.gen.events = d.events;
    po.data_dir = d.dir + "/data";
    std::printf("loading %s events in-process into %s ...\n", Millions(d.events).c_str(),
                po.data_dir.c_str());
    std::fflush(stdout);
    auto loaded = tb::Preload(po, [&d](const tally::event::UsageEvent& e) {
      if (e.kind != tally::event::EntityKind::kAgent) return;
      std::string key = e.workspace_id + '\n' + e.entity_id;
      AgentStat& a = d.agents[key];
      if (!e.entity_name.empty() && e.time_ms >= a.name_time) {
        a.name = e.entity_name;
        a.name_time = e.time_ms;
      }
      if (e.action == tally::event::Action::kExecuted && !e.organization_id.empty()) {
        a.org = e.organization_id;
        ++a.requests;
        ++d.org_requests[e.organization_id];
      }
    });
    if (!loaded) {
      std::fprintf(stderr, "load: %s\n", loaded.error().message.c_str());
      return 1;
    }
    d.load = *loaded;
    std::printf(
        "  %lld lines (%.0f MB JSON), %lld applied, %lld rejected; %.1f s (%.0f events/s; "
        "Aggregator::Apply %.1f s); RocksDB dir %.0f MB\n",
        static_cast<long long>(d.load.lines), d.load.json_bytes / 1e6,
        static_cast<long long>(d.load.applied), static_cast<long long>(d.load.rejected),
        d.load.seconds, d.load.lines / d.load.seconds, d.load.apply_seconds, d.load.db_bytes / 1e6);
    std::fflush(stdout);
  }

  // ---------------------------------------------------------------- scope: the largest org of
  // the largest size and its busiest agent (the same agent at every size, by its current name
  // in each).
  const SizeData& big = data.back();
  std::string org;
  int64_t org_n = -1;
  for (const auto& [o, n] : big.org_requests)
    if (n > org_n || (n == org_n && o < org)) org = o, org_n = n;
  std::string agent_key;
  int64_t agent_n = -1;
  for (const auto& [k, a] : big.agents)
    if (a.org == org && (a.requests > agent_n || (a.requests == agent_n && k < agent_key)))
      agent_key = k, agent_n = a.requests;
  std::printf("scope: organization %s; busiest agent %s\n", org.c_str(),
              agent_key.substr(agent_key.find('\n') + 1).c_str());
  for (const SizeData& d : data) {
    auto it = d.agents.find(agent_key);
    const std::string name = it == d.agents.end() ? "" : it->second.name;
    int64_t total = 0;
    for (const auto& [o, n] : d.org_requests) total += n;
    auto on = d.org_requests.find(org);
    std::printf(
        "  %s: %lld agent.executed in all, %lld in %s; the agent: %lld requests, current name "
        "\"%s\"\n",
        Millions(d.events).c_str(), static_cast<long long>(total),
        static_cast<long long>(on == d.org_requests.end() ? 0 : on->second), org.c_str(),
        static_cast<long long>(it == d.agents.end() ? 0 : it->second.requests), name.c_str());
  }

  // ---------------------------------------------------------------- start one tallyd per size
  const std::string keys_path = tmp.path() + "/keys.toml";
  {
    std::ofstream out(keys_path);
    out << "[[keys]]\nname = \"bench-org\"\nsha256 = \"" << tally::Sha256Hex(kOrgToken)
        << "\"\nuser_id = \"bench\"\norganizations = [\"" << org << "\"]\n";
  }
  for (SizeData& d : data) {
    tb::TallydOnDirOptions so;
    so.binary = tallyd_path;
    so.data_dir = d.dir + "/data";
    so.keys_path = keys_path;
    so.now = world.end_day + "T12:00:00Z";
    so.cache_ttl_s = 0;
    so.log_path = d.dir + "/tallyd.log";
    auto s = tb::TallydOnDir::Start(so);
    if (!s) {
      std::fprintf(stderr, "tallyd (%s): %s\n", Millions(d.events).c_str(),
                   s.error().message.c_str());
      return 1;
    }
    d.server = std::move(*s);
    std::printf("tallyd for %s (%s): ready in %.1f s (store open + label directory load)\n",
                Millions(d.events).c_str(), tallyd_path.c_str(), d.server->startup_seconds());
  }

  // ---------------------------------------------------------------- targets
  std::vector<Target> targets;
  for (int m = 0; m < kMetricCount; ++m) {
    for (int sc = 0; sc < kScopeCount; ++sc) {
      for (const auto& [start, stop] : ranges) {
        Target t;
        t.metric = m;
        t.scope = sc;
        std::string base = std::string("/v1/analytics/requests/") + kMetrics[m] +
                           "?startDate=" + start + "&endDate=" + stop;
        for (const SizeData& d : data) {
          std::string target = base;
          if (sc == 1) {
            auto it = d.agents.find(agent_key);
            target += "&agentName=" +
                      tally::http::PercentEncode(it == d.agents.end() ? "" : it->second.name);
          }
          t.per_size.push_back(std::move(target));
        }
        targets.push_back(std::move(t));
      }
    }
  }
  const tally::http::StringPairs headers = {{"Authorization", std::string("Bearer ") + kOrgToken},
                                            {"organization-id", org}};

  int64_t failures = 0;
  // empties[size][metric*2+scope]
  std::vector<std::vector<int64_t>> empties(data.size(), std::vector<int64_t>(kMetricCount * 2));
  std::vector<std::vector<std::string>> first_body(data.size(),
                                                   std::vector<std::string>(kMetricCount * 2));
  auto send = [&](size_t si, const Target& t, tb::Sample* s) -> bool {
    auto reply = data[si].server->Get(t.per_size[si], headers, s);
    if (!reply || reply->status != 200) {
      if (++failures <= 5) {
        std::fprintf(stderr, "request failed (%s): %s -> %s\n", Millions(data[si].events).c_str(),
                     t.per_size[si].c_str(),
                     reply ? (std::to_string(reply->status) + " " + reply->body).c_str()
                           : reply.error().message.c_str());
      }
      return false;
    }
    const int k = t.metric * 2 + t.scope;
    if (LooksEmpty(t.metric, reply->body)) ++empties[si][k];
    if (first_body[si][k].empty()) first_body[si][k] = reply->body.substr(0, 160);
    return true;
  };

  // Ingest into the largest size's tallyd while the requests are measured.
  std::unique_ptr<tb::BackgroundIngest> background;
  if (ingest_rate > 0) {
    auto broker = tb::WaitForBrokerAddress(big.dir + "/data/broker.addr", 10'000);
    if (!broker) {
      std::fprintf(stderr, "broker address: %s\n", broker.error().message.c_str());
      return 1;
    }
    if (!tb::StartBackgroundIngest(
            {.cli = TALLY_CLI_PATH,
             .brokers = *broker,
             .host = big.server->host(),
             .port = big.server->port(),
             .dir = big.dir,
             .rate = ingest_rate,
             .seconds = 150,
             .queried_end_day = world.end_day,
             .days = ingest_days,
             .seed = 42,
             .first_id = big.events,
             .gen_args = tb::GenShapeArgs(world.users, world.agents, world.workspaces,
                                          world.organizations)},
            &background)) {
      return 1;
    }
  }

  tb::Sample sample;
  for (int w = 0; w < warmup; ++w)
    for (const Target& t : targets)
      for (size_t si = 0; si < data.size(); ++si) send(si, t, &sample);

  // ---------------------------------------------------------------- runs
  // samples[run][size][metric*2+scope]
  const int per_range = std::max(1, requests / static_cast<int>(ranges.size()));
  std::vector<std::vector<std::vector<std::vector<tb::Sample>>>> samples(
      runs, std::vector<std::vector<std::vector<tb::Sample>>>(
                data.size(), std::vector<std::vector<tb::Sample>>(kMetricCount * 2)));
  std::mt19937 rng(12345);
  std::printf(
      "\nmix: %d endpoints x %d scopes x %zu ranges, %d requests per (endpoint, scope) per run "
      "and size, shuffled; %d warm-up passes; %d runs; load average now %s\n",
      kMetricCount, kScopeCount, ranges.size(), per_range * static_cast<int>(ranges.size()), warmup,
      runs, tb::LoadAverage().c_str());
  std::fflush(stdout);
  const auto q0 = tb::SteadyClock::now();
  for (int run = 0; run < runs; ++run) {
    std::vector<const Target*> order;
    for (const Target& t : targets)
      for (int i = 0; i < per_range; ++i) order.push_back(&t);
    std::shuffle(order.begin(), order.end(), rng);
    const auto r0 = tb::SteadyClock::now();
    for (size_t i = 0; i < order.size(); ++i) {
      const Target& t = *order[i];
      for (size_t j = 0; j < data.size(); ++j) {
        const size_t si = (i % 2 == 0) ? j : data.size() - 1 - j;
        if (send(si, t, &sample)) samples[run][si][t.metric * 2 + t.scope].push_back(sample);
      }
    }
    std::printf("run %d: %zu requests in %.1f s, load average %s\n", run + 1,
                order.size() * data.size(),
                std::chrono::duration<double>(tb::SteadyClock::now() - r0).count(),
                tb::LoadAverage().c_str());
    std::fflush(stdout);
  }
  const double query_s = std::chrono::duration<double>(tb::SteadyClock::now() - q0).count();
  if (!tb::FinishBackgroundIngest(&background, ingest_rate,
                                  "the " + Millions(big.events) + " tallyd")) {
    return 1;
  }

  // ---------------------------------------------------------------- report
  struct Cell {
    double s50 = 0, s99 = 0, c50 = 0, c99 = 0, smax = 0;
  };
  // cell[size][k]: medians over runs of the per-run percentiles
  std::vector<std::vector<Cell>> cell(data.size(), std::vector<Cell>(kMetricCount * 2));
  std::vector<std::vector<double>> run_s99_all(data.size());  // per-run p99 of all requests
  for (size_t si = 0; si < data.size(); ++si) {
    for (int k = 0; k < kMetricCount * 2; ++k) {
      std::vector<double> s50, s99, c50, c99;
      double smax = 0;
      for (int run = 0; run < runs; ++run) {
        std::vector<double> s, c;
        for (const tb::Sample& x : samples[run][si][k]) {
          c.push_back(x.client_ms);
          if (x.server_ms >= 0) s.push_back(x.server_ms);
        }
        s50.push_back(tb::Percentile(s, 0.5));
        s99.push_back(tb::Percentile(s, 0.99));
        c50.push_back(tb::Percentile(c, 0.5));
        c99.push_back(tb::Percentile(c, 0.99));
        smax = std::max(smax, tb::Percentile(s, 1.0));
      }
      cell[si][k] = {tb::Median(s50), tb::Median(s99), tb::Median(c50), tb::Median(c99), smax};
    }
    for (int run = 0; run < runs; ++run) {
      std::vector<double> s;
      for (int k = 0; k < kMetricCount * 2; ++k)
        for (const tb::Sample& x : samples[run][si][k])
          if (x.server_ms >= 0) s.push_back(x.server_ms);
      run_s99_all[si].push_back(tb::Percentile(s, 0.99));
    }
  }

  const size_t lo = 0, hi = data.size() - 1;
  std::printf("\nServer-side latency (ms; p50/p99 per run, median of %d runs):\n\n", runs);
  std::printf("| endpoint | scope |");
  for (const SizeData& d : data)
    std::printf(" %s p50 | %s p99 |", Millions(d.events).c_str(), Millions(d.events).c_str());
  if (hi > lo) std::printf(" p50 ratio | p99 ratio |");
  std::printf("\n|---|---|");
  for (size_t i = 0; i < data.size(); ++i) std::printf("---|---|");
  if (hi > lo) std::printf("---|---|");
  std::printf("\n");
  bool p99_met = true, ratio_met = true;
  double worst_p99 = 0, worst_ratio = 0;
  std::string worst_p99_at, worst_ratio_at;
  for (int m = 0; m < kMetricCount; ++m) {
    for (int sc = 0; sc < kScopeCount; ++sc) {
      const int k = m * 2 + sc;
      std::printf("| %s | %s |", kMetrics[m], kScopes[sc]);
      for (size_t si = 0; si < data.size(); ++si)
        std::printf(" %.3f | %.3f |", cell[si][k].s50, cell[si][k].s99);
      const std::string at = std::string(kMetrics[m]) + " (" + kScopes[sc] + ")";
      if (hi > lo) {
        const double r50 = cell[hi][k].s50 / std::max(1e-9, cell[lo][k].s50);
        const double r99 = cell[hi][k].s99 / std::max(1e-9, cell[lo][k].s99);
        std::printf(" %.2f | %.2f |", r50, r99);
        if (r50 > 2.0 || r99 > 2.0) ratio_met = false;
        if (std::max(r50, r99) > worst_ratio) worst_ratio = std::max(r50, r99), worst_ratio_at = at;
      }
      std::printf("\n");
      if (cell[hi][k].s99 >= 2.0) p99_met = false;
      if (cell[hi][k].s99 > worst_p99) worst_p99 = cell[hi][k].s99, worst_p99_at = at;
    }
  }

  std::printf("\nClient-side latency (ms; send -> last byte, median of %d runs):\n\n", runs);
  std::printf("| endpoint | scope |");
  for (const SizeData& d : data)
    std::printf(" %s p50 | %s p99 |", Millions(d.events).c_str(), Millions(d.events).c_str());
  std::printf(" %s server max |\n|---|---|", Millions(data[hi].events).c_str());
  for (size_t i = 0; i < data.size(); ++i) std::printf("---|---|");
  std::printf("---|\n");
  for (int m = 0; m < kMetricCount; ++m) {
    for (int sc = 0; sc < kScopeCount; ++sc) {
      const int k = m * 2 + sc;
      std::printf("| %s | %s |", kMetrics[m], kScopes[sc]);
      for (size_t si = 0; si < data.size(); ++si)
        std::printf(" %.3f | %.3f |", cell[si][k].c50, cell[si][k].c99);
      std::printf(" %.3f |\n", cell[hi][k].smax);
    }
  }

  std::printf("\nServer p99 over all requests, per run:");
  for (size_t si = 0; si < data.size(); ++si) {
    std::printf(" %s:", Millions(data[si].events).c_str());
    for (double v : run_s99_all[si]) std::printf(" %.3f", v);
  }
  std::printf("\n\nAnswers (first 160 bytes of the first answer at %s):\n",
              Millions(data[hi].events).c_str());
  int64_t empty_total = 0;
  for (int m = 0; m < kMetricCount; ++m) {
    for (int sc = 0; sc < kScopeCount; ++sc) {
      const int k = m * 2 + sc;
      std::printf("  %s (%s): %s", kMetrics[m], kScopes[sc], first_body[hi][k].c_str());
      for (size_t si = 0; si < data.size(); ++si) {
        if (empties[si][k]) {
          std::printf("  [EMPTY answers at %s: %lld]", Millions(data[si].events).c_str(),
                      static_cast<long long>(empties[si][k]));
          empty_total += empties[si][k];
        }
      }
      std::printf("\n");
    }
  }
  std::printf("\nfailed requests: %lld; empty answers: %lld\n", static_cast<long long>(failures),
              static_cast<long long>(empty_total));
  std::printf("goal: server p99 < 2 ms for every endpoint at %s -> %s (worst %.3f ms: %s)\n",
              Millions(data[hi].events).c_str(), p99_met ? "met" : "NOT met", worst_p99,
              worst_p99_at.c_str());
  if (hi > lo) {
    std::printf("goal: latency at %s <= 2x latency at %s (p50 and p99) -> %s (worst %.2fx: %s)\n",
                Millions(data[hi].events).c_str(), Millions(data[lo].events).c_str(),
                ratio_met ? "met" : "NOT met", worst_ratio, worst_ratio_at.c_str());
  }
  std::printf("query phase %.1f s; total wall time %.1f s; load average after: %s\n", query_s,
              std::chrono::duration<double>(tb::SteadyClock::now() - wall0).count(),
              tb::LoadAverage().c_str());
  return failures == 0 ? 0 : 1;
}
