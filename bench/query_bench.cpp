// Latency benchmark of GET /api/v1/workspaces/metrics: ingests N generated events spanning 90
// days into tallyd (embedded broker, paced producer, see bench_util.h), then sends a fixed,
// shuffled mix of every request shape the API accepts (entity x metric x aggregation x group_by
// x granularity x period, with and without a user filter) for several workspaces over ONE
// keep-alive connection, with the response cache disabled (--cache-ttl 0). Reports client-side
// latency (send -> whole response read) and server-side latency (the Server-Timing header the
// router adds: routing + handler, without network and socket I/O).
//
//   query_bench [--events 1000000] [--requests 6000] [--runs 3]
//
// tallyd runs with --now at the last generated day, so every period covers stable data.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_util.h"

namespace tb = tally::bench;

namespace {

struct Shape {
  std::string target;
  std::string group_by;  // "none" | "user" | "date"
  std::string period;
  bool user_filter = false;
};

struct Sample {
  double client_ms;
  double server_ms;  // -1 when the header is missing
};

std::vector<Shape> BuildShapes(const std::vector<std::pair<std::string, std::string>>& targets) {
  // (entity, metric) pairs the API accepts: avg_duration only for workflows.
  const std::vector<std::pair<std::string, std::string>> entity_metrics = {
      {"agents", "executions"}, {"agents", "created"},       {"agents", "copies"},
      {"agents", "shares"},     {"workflows", "executions"}, {"workflows", "created"},
      {"workflows", "copies"},  {"workflows", "shares"},     {"workflows", "avg_duration"}};
  const std::vector<std::string> aggregations = {"count", "sum", "avg"};
  const std::vector<std::string> periods = {"7d", "30d", "90d", "all"};
  const std::vector<std::string> granularities = {"daily", "weekly", "monthly"};
  std::vector<Shape> shapes;
  for (const auto& [workspace, user] : targets) {
    for (const auto& [entity, metric] : entity_metrics) {
      for (const auto& agg : aggregations) {
        // group_by none / user / date x granularity; avg_duration takes no group_by.
        std::vector<std::pair<std::string, std::string>> groupings = {{"none", ""}};
        if (metric != "avg_duration") {
          groupings.push_back({"user", ""});
          for (const auto& g : granularities) groupings.push_back({"date", g});
        }
        for (const auto& [group_by, granularity] : groupings) {
          for (const auto& period : periods) {
            for (bool with_user : {false, true}) {
              Shape s;
              s.target = "/api/v1/workspaces/metrics?workspace_uuid=" + workspace +
                         "&entity=" + entity + "&metric=" + metric + "&aggregation=" + agg;
              if (group_by != "none") s.target += "&group_by=" + group_by;
              if (!granularity.empty()) s.target += "&granularity=" + granularity;
              s.target += "&filters%5Bperiod%5D=" + period;
              if (with_user) s.target += "&filters%5Buser_id%5D=" + user;
              s.group_by = group_by;
              s.period = period;
              s.user_filter = with_user;
              shapes.push_back(std::move(s));
            }
          }
        }
      }
    }
  }
  return shapes;
}

struct Stats {
  size_t n = 0;
  double c50 = 0, c99 = 0, cmax = 0, s50 = 0, s99 = 0, smax = 0;
};

Stats Summarize(const std::vector<Sample>& samples) {
  std::vector<double> c, s;
  for (const auto& x : samples) {
    c.push_back(x.client_ms);
    if (x.server_ms >= 0) s.push_back(x.server_ms);
  }
  Stats st;
  st.n = samples.size();
  st.c50 = tb::Percentile(c, 0.5);
  st.c99 = tb::Percentile(c, 0.99);
  st.cmax = tb::Percentile(c, 1.0);
  st.s50 = tb::Percentile(s, 0.5);
  st.s99 = tb::Percentile(s, 0.99);
  st.smax = tb::Percentile(s, 1.0);
  return st;
}

void PrintStatsRow(const std::string& label, const Stats& st) {
  std::printf("| %s | %zu | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", label.c_str(), st.n,
              st.c50, st.c99, st.cmax, st.s50, st.s99, st.smax);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Latency benchmark of GET /api/v1/workspaces/metrics (see docs/benchmarks.md)."};
  int64_t events = 1'000'000;
  int requests = 6000, runs = 3, warmup = 500, partitions = 4, workspaces = 5, settle_s = 0;
  double max_lag_mb = 2.5;
  std::string end_day = "2026-01-31";
  bool keep = false;
  int ingest_days = 1;
  double ingest_rate = 0, request_rate = 0;
  app.add_option("--events", events, "Generated events (90 days ending at --end-day)")
      ->capture_default_str();
  app.add_option("--requests", requests, "Measured requests per run")->capture_default_str();
  app.add_option("--runs", runs, "Measurement runs over the same ingested data")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Unmeasured requests before the first run")
      ->capture_default_str();
  app.add_option("--settle-seconds", settle_s,
                 "Idle time between ingest and the first request (lets RocksDB finish flushes and "
                 "compactions)")
      ->capture_default_str();
  app.add_option("--workspaces", workspaces, "Workspaces queried (busiest first, then spread)")
      ->capture_default_str();
  app.add_option("--partitions", partitions, "Partitions of the events topic")
      ->capture_default_str();
  app.add_option("--max-lag-mb", max_lag_mb, "Producer pacing bound per partition (MB)")
      ->capture_default_str();
  app.add_option("--end-day", end_day, "Last day of generated data; tallyd's --now is noon of it")
      ->capture_default_str();
  app.add_flag("--keep", keep, "Keep the data dir and tallyd log");
  tb::AddBackgroundIngestFlags(&app, &ingest_rate, &ingest_days, "tallyd");
  app.add_option("--request-rate", request_rate,
                 "Send requests at this pace (per second, one connection) instead of back to "
                 "back (0)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::printf("# query_bench\n\nmachine: %s\nload average before: %s\n",
              tb::MachineSummary().c_str(), tb::LoadAverage().c_str());

  // Events, with per-workspace and per-user counts to pick the queried workspaces and users.
  tally::gen::GenOptions gen;
  gen.events = events;
  gen.end_day = end_day;
  gen.days = 90;
  std::unordered_map<std::string, int64_t> ws_events;
  std::unordered_map<std::string, std::unordered_map<std::string, int64_t>> ws_users;
  const std::string user_marker = R"("user":{"id":")";
  tb::EventSet set = tb::GenerateEvents(gen, partitions, [&](const tally::gen::GeneratedLine& l) {
    ++ws_events[l.key];
    size_t pos = l.json.find(user_marker);
    if (pos == std::string::npos) return;
    pos += user_marker.size();
    size_t end = l.json.find('"', pos);
    ++ws_users[l.key][l.json.substr(pos, end - pos)];
  });
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& [ws, n] : ws_events) ranked.push_back({n, ws});
  std::sort(ranked.rbegin(), ranked.rend());
  std::vector<std::pair<std::string, std::string>> targets;  // (workspace, its busiest user)
  std::vector<size_t> picks;
  for (int i = 0; i < workspaces && i < static_cast<int>(ranked.size()); ++i) {
    // The busiest half of the picks, then evenly spread down to the quietest workspace.
    size_t idx = i < (workspaces + 1) / 2 ? static_cast<size_t>(i)
                                          : (ranked.size() - 1) * (i - (workspaces + 1) / 2 + 1) /
                                                std::max(1, workspaces - (workspaces + 1) / 2);
    if (std::find(picks.begin(), picks.end(), idx) != picks.end()) continue;
    picks.push_back(idx);
  }
  std::printf(
      "events: %zu (%.1f MB) over 90 days ending %s; queried workspaces (events, busiest "
      "user's events):",
      set.events.size(), set.value_bytes / 1e6, end_day.c_str());
  for (size_t idx : picks) {
    const std::string& ws = ranked[idx].second;
    std::pair<int64_t, std::string> best{0, ""};
    for (const auto& [u, n] : ws_users[ws]) best = std::max(best, std::make_pair(n, u));
    targets.push_back({ws, best.second});
    std::printf(" %s (%lld, %lld)", ws.substr(0, 8).c_str(),
                static_cast<long long>(ranked[idx].first), static_cast<long long>(best.first));
  }
  std::printf("\n");
  std::fflush(stdout);

  tb::TallydOptions to;
  to.binary = TALLYD_PATH;
  to.partitions = partitions;
  to.cache_ttl_s = 0;
  to.now = end_day + "T12:00:00Z";
  to.keep_data_dir = keep;
  auto tallyd = tb::Tallyd::Start(to);
  if (!tallyd) {
    std::fprintf(stderr, "tallyd: %s\n", tallyd.error().message.c_str());
    return 1;
  }
  tb::PaceOptions pace;
  pace.max_lag_bytes = max_lag_mb * 1024 * 1024;
  auto ingest = tb::ProduceAndPace(set, (*tallyd)->broker(), pace,
                                   tb::ReadyzProgress(&(*tallyd)->client(), partitions));
  if (!ingest) {
    std::fprintf(stderr, "ingest: %s\n%s\n", ingest.error().message.c_str(),
                 tb::FileTail((*tallyd)->process().log_path()).c_str());
    return 1;
  }
  auto metrics = (*tallyd)->client().Send("GET", "/metrics");
  double consumed = -1, trimmed = -1;
  if (metrics && metrics->status == 200) {
    if (auto v = tb::PrometheusValue(metrics->body, "tally_events_consumed_total")) consumed = *v;
    if (auto v = tb::PrometheusValue(metrics->body, "tally_log_trimmed_total")) trimmed = *v;
  }
  std::printf("ingest: %.1f s (%.0f events/s), consumed %.0f, trimmed %.0f\n", ingest->seconds,
              ingest->events / ingest->seconds, consumed, trimmed);
  if (consumed != static_cast<double>(set.events.size()) || trimmed != 0) {
    std::fprintf(stderr, "invalid run: not every event was ingested exactly once\n");
    return 1;
  }

  if (settle_s > 0) std::this_thread::sleep_for(std::chrono::seconds(settle_s));
  std::vector<Shape> shapes = BuildShapes(targets);
  std::mt19937 rng(12345);
  std::shuffle(shapes.begin(), shapes.end(), rng);
  std::printf(
      "request mix: %zu distinct requests (%zu workspaces), cycled; %d warm-up, then %d "
      "runs of %d\n\n",
      shapes.size(), targets.size(), warmup, runs, requests);
  std::fflush(stdout);

  // Ingest running while the requests are measured.
  tb::TempDir ingest_dir("tally_query_bench_ingest_");
  std::unique_ptr<tb::BackgroundIngest> background;
  if (!tb::StartBackgroundIngest({.cli = TALLY_CLI_PATH,
                                  .brokers = (*tallyd)->broker(),
                                  .host = (*tallyd)->host(),
                                  .port = (*tallyd)->port(),
                                  .dir = ingest_dir.path(),
                                  .rate = ingest_rate,
                                  .seconds = 120,
                                  .queried_end_day = end_day,
                                  .days = ingest_days,
                                  .seed = gen.seed,
                                  .first_id = events,
                                  .gen_args = {}},
                                 &background)) {
    return 1;
  }

  auto client = tally::http::testing::HttpClient::Connect((*tallyd)->host(), (*tallyd)->port());
  if (!client) {
    std::fprintf(stderr, "connect: %s\n", client.error().message.c_str());
    return 1;
  }
  const tally::http::StringPairs headers = {
      {"Authorization", std::string("Bearer ") + tb::kBenchToken}};
  size_t cursor = 0;
  int64_t errors = 0, empty_totals = 0;
  auto send = [&](Sample* out, const Shape** shape) -> bool {
    const Shape& s = shapes[cursor++ % shapes.size()];
    *shape = &s;
    const auto t0 = tb::SteadyClock::now();
    auto reply = client->Send("GET", s.target, {}, headers);
    const double ms =
        std::chrono::duration<double, std::milli>(tb::SteadyClock::now() - t0).count();
    if (!reply || reply->status != 200) {
      if (++errors <= 3) {
        std::fprintf(stderr, "request failed: %s -> %s\n", s.target.c_str(),
                     reply ? (std::to_string(reply->status) + " " + reply->body).c_str()
                           : reply.error().message.c_str());
      }
      return false;
    }
    if (reply->body.find("\"total\":0,") != std::string::npos) ++empty_totals;
    out->client_ms = ms;
    out->server_ms = tb::ParseServerTiming(reply->Header("Server-Timing"));
    return true;
  };

  Sample sample;
  const Shape* shape = nullptr;
  for (int i = 0; i < warmup; ++i) send(&sample, &shape);

  std::vector<double> run_c50, run_c99, run_s50, run_s99, run_rps;
  std::map<std::string, std::vector<Sample>> by_group, by_period, by_filter;
  std::printf(
      "| run | requests | client p50 ms | client p99 ms | client max ms | server p50 ms | "
      "server p99 ms | server max ms | requests/s |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int run = 1; run <= runs; ++run) {
    std::vector<Sample> samples;
    samples.reserve(requests);
    const auto t0 = tb::SteadyClock::now();
    for (int i = 0; i < requests; ++i) {
      if (request_rate > 0) {
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<tb::SteadyClock::duration>(
                                               std::chrono::duration<double>(i / request_rate)));
      }
      if (!send(&sample, &shape)) continue;
      samples.push_back(sample);
      by_group[shape->group_by].push_back(sample);
      by_period[shape->period].push_back(sample);
      by_filter[shape->user_filter ? "with user_id" : "without user_id"].push_back(sample);
    }
    const double secs = std::chrono::duration<double>(tb::SteadyClock::now() - t0).count();
    Stats st = Summarize(samples);
    std::printf("| %d | %zu | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f |\n", run, st.n,
                st.c50, st.c99, st.cmax, st.s50, st.s99, st.smax, st.n / secs);
    std::fflush(stdout);
    run_c50.push_back(st.c50);
    run_c99.push_back(st.c99);
    run_s50.push_back(st.s50);
    run_s99.push_back(st.s99);
    run_rps.push_back(st.n / secs);
  }
  std::printf("| median | | %.3f | %.3f | | %.3f | %.3f | | %.0f |\n\n", tb::Median(run_c50),
              tb::Median(run_c99), tb::Median(run_s50), tb::Median(run_s99), tb::Median(run_rps));
  if (!tb::FinishBackgroundIngest(&background, ingest_rate, "tallyd")) return 1;
  if (ingest_rate > 0) std::printf("\n");

  std::printf(
      "All runs together, by request shape:\n\n| shape | requests | client p50 ms | client "
      "p99 ms | client max ms | server p50 ms | server p99 ms | server max ms |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const auto& [k, v] : by_group) PrintStatsRow("group_by=" + k, Summarize(v));
  for (const auto& [k, v] : by_period) PrintStatsRow("period=" + k, Summarize(v));
  for (const auto& [k, v] : by_filter) PrintStatsRow(k, Summarize(v));
  std::printf("\nfailed requests: %lld; responses with data.total 0: %lld\n",
              static_cast<long long>(errors), static_cast<long long>(empty_totals));
  const double s99 = tb::Median(run_s99);
  std::printf(
      "goal: server-side p99 < 2 ms -> %s (median of run p99s: %.3f ms)\nload average "
      "after: %s\n",
      s99 > 0 && s99 < 2.0 ? "met" : "NOT met", s99, tb::LoadAverage().c_str());
  return errors == 0 ? 0 : 1;
}
