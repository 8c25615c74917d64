// Latency benchmark of GET /api/v1/monitoring/{workspace_id}/superagents on one workspace holding
// ~100,000 live agents at 10M generated events: 50-row pages sorted by total credits, with and
// without a search, first pages and the pages after them (cursor).
//
//   superagents_bench [--events 10000000] [--agents 125000] [--requests 100] [--runs 3]
//
// The events (`tally gen`, by default ONE workspace and organization, 10,000 users, --agents
// agents of which the generator deletes some late in the stream) are loaded in-process into
// <tmp>/data/db (bench/preload.h: EventParser -> Aggregator -> RocksDB in batches of 20,000,
// like tallyd's ingest, without Kafka), then tallyd is started on that data dir with --cache-ttl 0
// and --now at noon of --end-day, and queried with a member key of the workspace that holds the
// most live agents, over one keep-alive connection.
//
// Request shapes (all sort=-total_credits_consumed&limit=50; default credit range = this UTC
// month, i.e. the month of --end-day):
//   no search        no search parameter: every live agent
//   search many      search=<--search-many>, a word in many agent names
//   search few       search=<--search-few>, a text in a handful of names
//   search many 90d  the same as search many, with from/to = the 90 days ending at --end-day
// Each measured request is a walk: the first page, then --pages - 1 pages following next_cursor
// (which the handler serves from the result set it froze at the first page). Each run sends
// --requests walks per shape, one block per shape (--mix: shuffled together).
// Then (--cold-requests) first pages right after a write: one event is produced to tallyd's
// embedded broker and applied before each (what every request sees under continuous ingest),
// cycling through three kinds of write: an agent.executed on a listed agent (usage only), an
// agent.updated renaming a listed agent, and an agent.created adding an agent. Reported:
// server-side latency (Server-Timing: app;dur) and client-side latency (send -> last byte), p50/p99
// per run and their medians over runs, for first pages per shape and for cursor pages.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bench_util.h"
#include "common/calendar.h"
#include "common/sha256.h"
#include "http/router.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "preload.h"
#include "query/superagents.h"
#include "query/testing/superagents_testing.h"
#include "store/store.h"

namespace tb = tally::bench;

namespace {

constexpr const char* kMemberToken = "bench-member-token";

struct Shape {
  std::string name;
  std::string target;  // first page
  std::string search;  // the same request, for the in-process engine phase
  std::string from, to;
  int64_t total = -1;  // pagination.total of the first answer
};

// Value of "key":"..." or "key":123 in a flat JSON text; "" if absent or null.
std::string JsonField(const std::string& body, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t pos = body.find(k);
  if (pos == std::string::npos) return {};
  pos += k.size();
  if (pos < body.size() && body[pos] == '"') {
    size_t end = body.find('"', pos + 1);
    return body.substr(pos + 1, end - pos - 1);
  }
  size_t end = body.find_first_of(",}", pos);
  std::string v = body.substr(pos, end - pos);
  return v == "null" ? std::string() : v;
}

int CountRows(const std::string& body) {
  int n = 0;
  for (size_t pos = 0; (pos = body.find("\"superagent_id\":", pos)) != std::string::npos; ++pos)
    ++n;
  return n;
}

struct Stats {
  double s50 = 0, s99 = 0, c50 = 0, c99 = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Latency of GET /api/v1/monitoring/{workspace_id}/superagents on a workspace with ~100k "
      "agents (see docs/benchmarks.md)."};
  int64_t events = 10'000'000;
  tally::gen::GenOptions world{.workspaces = 1,
                               .organizations = 1,
                               .users = 10'000,
                               .agents = 125'000,
                               .workflows = 200,
                               .end_day = "2026-01-31",
                               .days = 90};
  int requests = 100, runs = 3, pages = 5, warmup = 3, cold_requests = 20;
  int engine_requests = 100;
  std::string search_many = "agent", search_few = "copilot 777";
  std::string tmp_base, data_dir;
  bool keep = false;
  app.add_option("--events", events, "Generated events")->capture_default_str();
  tb::AddWorldFlags(&app, &world, "Generated agents (some are deleted late in the stream)");
  app.add_option("--requests", requests, "Walks (first page + cursor pages) per shape per run")
      ->capture_default_str();
  app.add_option("--runs", runs, "Measurement runs")->capture_default_str();
  app.add_option("--pages", pages, "Pages per walk (the first + pages-1 by cursor)")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Unmeasured walks per shape before the runs")
      ->capture_default_str();
  app.add_option("--cold-requests", cold_requests,
                 "First pages per shape and kind of write (executed, renamed, created) measured "
                 "right after a write (one event produced to tallyd's broker and applied before "
                 "each); 0 skips this phase")
      ->capture_default_str();
  app.add_option("--engine-requests", engine_requests,
                 "Calls per shape of the in-process engine phase (after tallyd stops); 0 skips it")
      ->capture_default_str();
  app.add_option("--search-many", search_many, "Search text matching many agents")
      ->capture_default_str();
  app.add_option("--search-few", search_few, "Search text matching few agents")
      ->capture_default_str();
  app.add_option("--tmp", tmp_base, "Parent directory of the data dir (default $TMPDIR or /tmp)");
  app.add_option("--reuse", data_dir,
                 "Skip loading: serve this data dir (left by an earlier --keep run with the same "
                 "generator options)");
  app.add_flag("--keep", keep, "Keep the data dir and tallyd log");
  std::string tallyd_path = TALLYD_PATH;
  app.add_option("--tallyd", tallyd_path,
                 "tallyd binary to measure (default: the one built with this benchmark; e.g. a "
                 "build of another commit, for before/after comparisons)")
      ->capture_default_str();
  double ingest_rate = 0;
  int ingest_days = 1;
  tb::AddBackgroundIngestFlags(&app, &ingest_rate, &ingest_days, "tallyd");
  bool ingest_names = false;
  app.add_flag("--ingest-names", ingest_names,
               "The ingested runs carry agent names, visibility and owners (a fresh generator's, "
               "which contradict the loaded history's: hundreds of agents renamed per batch, the "
               "worst case for the cached tables); by default they name agents by id only");
  bool mix = false;
  app.add_flag("--mix", mix,
               "Shuffle the shapes together in each run (default: one block per shape; the "
               "handler frees evicted result sets inside later requests, so in a mix a search "
               "may pay for freeing a 100k-row set)");
  CLI11_PARSE(app, argc, argv);
  auto end = tally::ParseDay(world.end_day);
  if (!end) {
    std::fprintf(stderr, "--end-day: %s\n", end.error().message.c_str());
    return 2;
  }

  const auto wall0 = tb::SteadyClock::now();
  std::printf("# superagents_bench\n\nmachine: %s\nload average before: %s\n",
              tb::MachineSummary().c_str(), tb::LoadAverage().c_str());
  std::printf(
      "data: %lld events, %d agents, %d users, %d workflows, %d workspaces, %d organizations, %d "
      "days ending %s, seed 42\n",
      static_cast<long long>(events), world.agents, world.users, world.workflows, world.workspaces,
      world.organizations, world.days, world.end_day.c_str());
  std::fflush(stdout);

  if (!tmp_base.empty()) setenv("TMPDIR", tmp_base.c_str(), 1);
  tb::TempDir tmp("tally-superagents-bench-");
  if (keep) tmp.keep();  // with --reuse it only holds the keys file and tallyd's log

  // ---------------------------------------------------------------- load
  tb::PreloadOptions po;
  po.gen = world;
  po.gen.events = events;
  // Live agents per workspace, to pick the workspace (created/copied minus deleted).
  std::unordered_map<std::string, std::unordered_set<std::string>> live;
  std::string workspace;
  if (data_dir.empty()) {
    po.data_dir = tmp.path() + "/data";
    data_dir = po.data_dir;
    std::printf("loading in-process into %s ...\n", po.data_dir.c_str());
    std::fflush(stdout);
    auto loaded = tb::Preload(po, [&live](const tally::event::UsageEvent& e) {
      if (e.kind != tally::event::EntityKind::kAgent) return;
      using A = tally::event::Action;
      if (e.action == A::kCreated || e.action == A::kCopied) {
        live[e.workspace_id].insert(e.entity_id);
      } else if (e.action == A::kDeleted) {
        live[e.workspace_id].erase(e.entity_id);
      }
    });
    if (!loaded) {
      std::fprintf(stderr, "load: %s\n", loaded.error().message.c_str());
      return 1;
    }
    std::printf(
        "  %lld lines (%.0f MB JSON), %lld applied, %lld rejected; %.1f s (%.0f events/s; "
        "Aggregator::Apply %.1f s); RocksDB dir %.0f MB\n",
        static_cast<long long>(loaded->lines), loaded->json_bytes / 1e6,
        static_cast<long long>(loaded->applied), static_cast<long long>(loaded->rejected),
        loaded->seconds, loaded->lines / loaded->seconds, loaded->apply_seconds,
        loaded->db_bytes / 1e6);
    size_t best = 0;
    for (const auto& [ws, set] : live)
      if (set.size() > best || (set.size() == best && ws < workspace))
        best = set.size(), workspace = ws;
    std::printf("workspace %s: %zu live agents (of %zu workspaces with agents)\n",
                workspace.c_str(), best, live.size());
    std::ofstream(tmp.path() + "/workspace") << workspace << "\n";
  } else {
    // The workspace is the one an earlier run recorded next to its data dir.
    std::ifstream in(data_dir + "/../workspace");
    std::getline(in, workspace);
    if (workspace.empty()) {
      std::fprintf(stderr, "--reuse: no %s/../workspace file\n", data_dir.c_str());
      return 2;
    }
    std::printf("reusing %s (workspace %s)\n", data_dir.c_str(), workspace.c_str());
  }
  std::fflush(stdout);

  // ---------------------------------------------------------------- tallyd
  const std::string keys_path = tmp.path() + "/keys.toml";
  {
    std::ofstream out(keys_path);
    out << "[[keys]]\nname = \"bench-member\"\nsha256 = \"" << tally::Sha256Hex(kMemberToken)
        << "\"\nuser_id = \"bench\"\nworkspaces = { \"" << workspace << "\" = \"member\" }\n";
  }
  tb::TallydOnDirOptions so;
  so.binary = tallyd_path;
  so.data_dir = data_dir;
  so.keys_path = keys_path;
  so.now = world.end_day + "T12:00:00Z";
  so.cache_ttl_s = 0;
  so.log_path = tmp.path() + "/tallyd.log";
  auto server = tb::TallydOnDir::Start(so);
  if (!server) {
    std::fprintf(stderr, "tallyd: %s\n", server.error().message.c_str());
    return 1;
  }
  std::printf("tallyd %s ready in %.1f s (pid %d)\n", tallyd_path.c_str(),
              (*server)->startup_seconds(), static_cast<int>((*server)->process().pid()));

  // ---------------------------------------------------------------- shapes
  const std::string base =
      "/api/v1/monitoring/" + workspace + "/superagents?sort=-total_credits_consumed&limit=50";
  const std::string from90 = tally::FormatDay(*end - 89);
  std::vector<Shape> shapes = {
      {"no search", base, "", "", ""},
      {"search many", base + "&search=" + tally::http::PercentEncode(search_many), search_many, "",
       ""},
      {"search few", base + "&search=" + tally::http::PercentEncode(search_few), search_few, "",
       ""},
      {"search many 90d",
       base + "&search=" + tally::http::PercentEncode(search_many) + "&from=" + from90 +
           "&to=" + world.end_day,
       search_many, from90, world.end_day},
  };
  const tally::http::StringPairs headers = {
      {"Authorization", std::string("Bearer ") + kMemberToken}};

  int64_t failures = 0, empty_pages = 0;
  auto fail = [&](const std::string& target,
                  const tally::Result<tally::http::testing::HttpReply>& r) {
    if (++failures <= 5) {
      std::fprintf(stderr, "request failed: %s -> %s\n", target.c_str(),
                   r ? (std::to_string(r->status) + " " + r->body.substr(0, 300)).c_str()
                     : r.error().message.c_str());
    }
  };
  // One walk; appends samples of the first page to *first and of the others to *next.
  auto walk = [&](Shape& shape, std::vector<tb::Sample>* first, std::vector<tb::Sample>* next) {
    tb::Sample s;
    auto reply = (*server)->Get(shape.target, headers, &s);
    if (!reply || reply->status != 200) return fail(shape.target, reply);
    if (first) first->push_back(s);
    if (shape.total < 0) {
      std::string t = JsonField(reply->body, "total");
      shape.total = t.empty() ? 0 : std::stoll(t);
    }
    if (CountRows(reply->body) == 0 && shape.total != 0) ++empty_pages;
    std::string cursor = JsonField(reply->body, "next_cursor");
    for (int p = 1; p < pages && !cursor.empty(); ++p) {
      const std::string target = shape.target + "&cursor=" + cursor;
      auto r = (*server)->Get(target, headers, &s);
      if (!r || r->status != 200) return fail(target, r);
      if (next) next->push_back(s);
      if (CountRows(r->body) == 0) ++empty_pages;
      cursor = JsonField(r->body, "next_cursor");
    }
  };

  // Ingest into the measured tallyd while the runs are measured: the same generator options (so
  // the same workspace, agents and users), executions only, ids after the loaded ones.
  std::unique_ptr<tb::BackgroundIngest> background;
  if (ingest_rate > 0) {
    auto broker = tb::WaitForBrokerAddress(data_dir + "/broker.addr", 10'000);
    if (!broker) {
      std::fprintf(stderr, "broker address: %s\n", broker.error().message.c_str());
      return 1;
    }
    if (!tb::StartBackgroundIngest({.cli = TALLY_CLI_PATH,
                                    .brokers = *broker,
                                    .host = (*server)->host(),
                                    .port = (*server)->port(),
                                    .dir = tmp.path(),
                                    .rate = ingest_rate,
                                    .seconds = 120,
                                    .queried_end_day = world.end_day,
                                    .days = ingest_days,
                                    .seed = 42,
                                    .first_id = events,
                                    .gen_args =
                                        [&] {
                                          auto args = tb::GenShapeArgs(world.users, world.agents,
                                                                       world.workspaces,
                                                                       world.organizations);
                                          if (!ingest_names) args.push_back("--bare-executions");
                                          return args;
                                        }()},
                                   &background)) {
      return 1;
    }
  }

  for (int w = 0; w < warmup; ++w)
    for (Shape& sh : shapes) walk(sh, nullptr, nullptr);
  std::printf("shapes (matching agents = pagination.total):\n");
  for (const Shape& sh : shapes)
    std::printf("  %-16s %lld  GET %s\n", sh.name.c_str(), static_cast<long long>(sh.total),
                sh.target.c_str());
  std::printf(
      "%d walks per shape per run (1 first page + up to %d cursor pages), %d runs; load "
      "average now %s\n",
      requests, pages - 1, runs, tb::LoadAverage().c_str());
  std::fflush(stdout);

  // ---------------------------------------------------------------- runs
  // stats[shape][run]; index shapes.size() = cursor pages of every shape
  const size_t n = shapes.size();
  std::vector<std::vector<Stats>> stats(n + 1);
  std::mt19937 rng(12345);
  auto summarize = [](const std::vector<tb::Sample>& v) {
    std::vector<double> s, c;
    for (const tb::Sample& x : v) {
      c.push_back(x.client_ms);
      if (x.server_ms >= 0) s.push_back(x.server_ms);
    }
    return Stats{tb::Percentile(s, 0.5), tb::Percentile(s, 0.99), tb::Percentile(c, 0.5),
                 tb::Percentile(c, 0.99)};
  };
  std::printf(
      "\n| run | shape | first pages | server p50 ms | server p99 ms | client p50 ms | client p99 "
      "ms |\n|---|---|---|---|---|---|---|\n");
  const auto q0 = tb::SteadyClock::now();
  for (int run = 1; run <= runs; ++run) {
    // By default each shape runs as a block (the shape's first page p99 is what the goal is
    // about); --mix shuffles the shapes together.
    std::vector<size_t> order;
    for (size_t j = 0; j < n; ++j) {
      const size_t i = (j + static_cast<size_t>(run - 1)) % n;  // rotate the block order
      for (int k = 0; k < requests; ++k) order.push_back(i);
    }
    if (mix) std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::vector<tb::Sample>> first(n);
    std::vector<tb::Sample> next;
    for (size_t i : order) walk(shapes[i], &first[i], &next);
    for (size_t i = 0; i <= n; ++i) {
      const std::vector<tb::Sample>& v = i < n ? first[i] : next;
      Stats st = summarize(v);
      stats[i].push_back(st);
      std::printf("| %d | %s | %zu | %.3f | %.3f | %.3f | %.3f |\n", run,
                  i < n ? shapes[i].name.c_str() : "cursor pages (all shapes)", v.size(), st.s50,
                  st.s99, st.c50, st.c99);
    }
    std::printf("| | load average %s | | | | | |\n", tb::LoadAverage().c_str());
    std::fflush(stdout);
  }
  const double query_s = std::chrono::duration<double>(tb::SteadyClock::now() - q0).count();
  if (!tb::FinishBackgroundIngest(&background, ingest_rate, "tallyd")) return 1;

  // ---------------------------------------------------------------- after a write
  // Each measured first page follows one agent.executed event produced to tallyd's embedded
  // broker and applied (its /readyz offsets advanced): the store changed since the previous
  // request, as under live ingest, so nothing computed for earlier requests may be reused.
  constexpr const char* kWriteKinds[] = {"executed", "renamed", "created"};
  constexpr size_t kKinds = 3;
  std::vector<std::vector<tb::Sample>> cold(n * kKinds);  // [shape * kKinds + kind]
  double apply_wait_s = 0;
  if (cold_requests > 0) {
    std::string broker =
        tally::kafka::ReadBrokerAddressFile(data_dir + "/broker.addr").value_or(std::string());
    tally::kafka::ProducerOptions popts;
    popts.brokers = broker;
    popts.linger_ms = 0;
    auto producer = tally::kafka::Producer::Create(popts);
    if (!producer) {
      std::fprintf(stderr, "producer: %s\n", producer.error().message.c_str());
      return 1;
    }
    // Agents to bill: the ids on the first page of the listing.
    std::vector<std::string> ids;
    {
      tb::Sample s;
      auto r = (*server)->Get(shapes[0].target, headers, &s);
      const std::string marker = "\"superagent_id\":\"";
      for (size_t pos = 0; r && (pos = r->body.find(marker, pos)) != std::string::npos;) {
        pos += marker.size();
        ids.push_back(r->body.substr(pos, r->body.find('"', pos) - pos));
      }
    }
    if (ids.empty()) ids.push_back("none");
    auto consumed = [&]() -> int64_t {
      std::vector<int64_t> next;
      if (!tb::ReadyzOffsets((*server)->client(), tally::kafka::kDefaultEmbeddedPartitions, &next))
        return -1;
      int64_t total = 0;
      for (int64_t v : next) total += v;
      return total;
    };
    std::vector<size_t> order;  // shape * kKinds + kind
    for (size_t i = 0; i < n * kKinds; ++i)
      for (int k = 0; k < cold_requests; ++k) order.push_back(i);
    std::shuffle(order.begin(), order.end(), rng);
    int64_t seen = consumed();
    int serial = 0;
    // Event ids unique to this invocation: with --reuse, an earlier run's writes are in the dedupe
    // window and the same ids would be dropped as duplicates (no write at all).
    const std::string run_id =
        std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-";
    for (size_t slot : order) {
      const size_t i = slot / kKinds, kind = slot % kKinds;
      ++serial;
      const std::string sn = std::to_string(serial);
      std::string type = "agent.executed", agent = "\"id\":\"" + ids[serial % ids.size()] + "\"";
      if (kind == 1) {
        type = "agent.updated";
        agent += ",\"name\":\"Bench renamed " + run_id + sn + "\"";
      } else if (kind == 2) {
        type = "agent.created";
        agent = "\"id\":\"bench-agent-" + run_id + sn + "\",\"name\":\"Bench agent " + sn +
                "\",\"visibility\":\"workspace\"";
      }
      // Seconds apart. Renames are dated the next day, after every generated event (the
      // generator writes until the end of --end-day), so that each one is the latest name and
      // really changes the agent; the other writes fall in today's credit range.
      const std::string event =
          "{\"specversion\":\"1.0\",\"id\":\"bench-write-" + run_id + sn +
          "\",\"source\":\"bench\",\"type\":\"" + type + "\",\"time\":\"" +
          (kind == 1 ? tally::FormatDay(*end + 1) + "T00:" : world.end_day + "T11:") +
          (serial / 60 < 10 ? "0" : "") + std::to_string(serial / 60 % 60) + ":" +
          (serial % 60 < 10 ? "0" : "") + std::to_string(serial % 60) +
          ".000Z\",\"data\":{\"workspace_id\":\"" + workspace +
          "\",\"user\":{\"id\":\"1\"},\"agent\":{" + agent +
          "},\"message_credits\":3,\"integration_credits\":1}}";
      const auto w0 = tb::SteadyClock::now();
      if (auto st = (*producer)->Produce("usage-events", workspace, event);
          !st || !(*producer)->Flush(10'000)) {
        std::fprintf(stderr, "produce failed\n");
        return 1;
      }
      while (consumed() < seen + 1) {
        if (std::chrono::duration<double>(tb::SteadyClock::now() - w0).count() > 30) {
          std::fprintf(stderr, "the written event was not applied within 30 s\n");
          return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      ++seen;
      apply_wait_s += std::chrono::duration<double>(tb::SteadyClock::now() - w0).count();
      tb::Sample s;
      auto reply = (*server)->Get(shapes[i].target, headers, &s);
      if (!reply || reply->status != 200) {
        fail(shapes[i].target, reply);
        continue;
      }
      cold[slot].push_back(s);
    }
    std::printf(
        "\nAfter a write (%d first pages per shape and kind of write, each right after one event "
        "was applied; mean produce -> applied %.0f ms; load average %s):\n\n| shape | write | "
        "first pages | server p50 ms | server p99 ms | server max ms | client p50 ms | client p99 "
        "ms |\n|---|---|---|---|---|---|---|---|\n",
        cold_requests, 1000 * apply_wait_s / std::max<size_t>(1, order.size()),
        tb::LoadAverage().c_str());
    for (size_t slot = 0; slot < n * kKinds; ++slot) {
      Stats st = summarize(cold[slot]);
      std::vector<double> s;
      for (const tb::Sample& x : cold[slot]) s.push_back(x.server_ms);
      std::printf("| %s | %s | %zu | %.3f | %.3f | %.3f | %.3f | %.3f |\n",
                  shapes[slot / kKinds].name.c_str(), kWriteKinds[slot % kKinds], cold[slot].size(),
                  st.s50, st.s99, tb::Percentile(s, 1.0), st.c50, st.c99);
    }
    std::fflush(stdout);
  }

  const char* store_state = ingest_rate > 0 ? "under ingest" : "idle store";
  if (runs > 0) {
    std::printf(
        "\n%s (%s), median of %d runs (ms):\n\n| shape | "
        "matching agents | server p50 | server p99 | client p50 | client p99 |\n"
        "|---|---|---|---|---|---|\n",
        ingest_rate > 0 ? "Under ingest" : "Idle store",
        ingest_rate > 0 ? "events streamed into the workspace while measuring"
                        : "no write between requests",
        runs);
  }
  std::string verdicts;
  bool goal_met = true;
  for (size_t i = 0; runs > 0 && i <= n; ++i) {
    std::vector<double> s50, s99, c50, c99;
    for (const Stats& st : stats[i]) {
      s50.push_back(st.s50);
      s99.push_back(st.s99);
      c50.push_back(st.c50);
      c99.push_back(st.c99);
    }
    const double p99 = tb::Median(s99);
    std::printf("| %s | %s | %.3f | %.3f | %.3f | %.3f |\n",
                i < n ? ("first page, " + shapes[i].name).c_str() : "cursor pages (all shapes)",
                i < n ? std::to_string(shapes[i].total).c_str() : "", tb::Median(s50), p99,
                tb::Median(c50), tb::Median(c99));
    if (i < n && !shapes[i].search.empty()) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s%s %.3f ms", verdicts.empty() ? "" : "; ",
                    shapes[i].name.c_str(), p99);
      verdicts += buf;
      if (p99 >= 5.0) goal_met = false;
    }
  }
  std::printf("\nfailed requests: %lld; empty pages: %lld\n", static_cast<long long>(failures),
              static_cast<long long>(empty_pages));
  if (runs > 0) {
    std::printf(
        "goal: server p99 < 5 ms for a 50-row first page sorted by total credits, with "
        "search (%s) -> %s (%s)\n",
        store_state, goal_met ? "met" : "NOT met", verdicts.c_str());
  }

  // ---------------------------------------------------------------- the engine alone
  // In-process, on the same data once tallyd is stopped: ListSuperagents (every matching row,
  // what the handler asks for to freeze its cursor result set) against OpenSuperagents + the 50
  // rows of the page (rows built on demand), to separate the engine's filter and sort from the
  // cost of materializing every row.
  if (engine_requests > 0) {
    server->reset();
    auto store = tally::store::Store::Open({.path = data_dir + "/db"});
    if (!store) {
      std::fprintf(stderr, "open store: %s\n", store.error().message.c_str());
      return 1;
    }
    const tally::Clock clock = tally::Clock::Fixed(int64_t{*end} * 86'400'000 + 43'200'000);
    tally::query::SuperagentsCache cache;  // the engine's tables, kept between calls as in tallyd
    std::printf(
        "\nEngine alone, in-process (%d calls per variant and shape after one unmeasured; idle "
        "store; "
        "load average %s):\n\n| shape | ListSuperagents p50 ms | p99 ms | OpenSuperagents + 50 "
        "rows p50 ms | p99 ms |\n|---|---|---|---|---|\n",
        engine_requests, tb::LoadAverage().c_str());
    for (const Shape& sh : shapes) {
      tally::query::SuperagentsRequest req;
      req.workspace_id = workspace;
      req.search = sh.search;
      if (!sh.from.empty()) {
        req.from = *tally::ParseDay(sh.from);
        req.to = *tally::ParseDay(sh.to);
      }
      // Each variant in its own loop, results freed outside the timed part: interleaving them
      // would make one pay for freeing the other's (up to 100k) rows.
      std::vector<double> full, paged;
      for (int k = 0; k <= engine_requests; ++k) {
        const auto t0 = tb::SteadyClock::now();
        auto r = tally::query::ListSuperagents(**store, cache, clock, req);
        const auto t1 = tb::SteadyClock::now();
        if (!r) return std::fprintf(stderr, "%s\n", r.error().message.c_str()), 1;
        if (k > 0) full.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      for (int k = 0; k <= engine_requests; ++k) {
        const auto t0 = tb::SteadyClock::now();
        auto l = tally::query::OpenSuperagents(**store, cache, clock, req);
        if (!l) return std::fprintf(stderr, "%s\n", l.error().message.c_str()), 1;
        std::vector<tally::query::SuperagentRow> page;
        for (size_t r = 0; r < std::min<size_t>(50, (*l)->size()); ++r)
          page.push_back((*l)->Row(r));
        const auto t1 = tb::SteadyClock::now();
        if (k > 0) paged.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      std::printf("| %s | %.3f | %.3f | %.3f | %.3f |\n", sh.name.c_str(),
                  tb::Percentile(full, 0.5), tb::Percentile(full, 0.99), tb::Percentile(paged, 0.5),
                  tb::Percentile(paged, 0.99));
    }
  }
  std::printf("query phase %.1f s; total wall time %.1f s; load average after: %s\n", query_s,
              std::chrono::duration<double>(tb::SteadyClock::now() - wall0).count(),
              tb::LoadAverage().c_str());
  return failures == 0 ? 0 : 1;
}
