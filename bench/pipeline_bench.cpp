// In-process ingest pipeline benchmark (no Kafka): NDJSON -> EventParser -> Aggregator ->
// store, in batches, reporting time per phase and the process's CPU per event (RocksDB's
// background threads included). Separates the cost of tally's own code from the broker's.
//
// Usage: pipeline_bench FILE.ndjson [batch_size] [data_dir] [persist_every]
//   persist_every 0 (default): every batch is written to the store (Store::Write), as replay does.
//   persist_every N > 0: every batch is staged (Store::Stage) and the open state persisted
//   (Store::Persist) after every N batches and at the end, as live ingest does; batch_size 200
//   with persist_every 25 is tallyd at 1,000 events/s (a fetch every 200 ms, a persist every 5 s).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/allocator.h"
#include "event/event_parser.h"
#include "store/store.h"

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.ndjson [batch_size] [data_dir] [persist_every]\n",
                 argv[0]);
    return 2;
  }
  size_t batch = argc > 2 ? std::stoul(argv[2]) : 20000;
  std::string dir = argc > 3 ? argv[3] : "/tmp/tally_pipeline_bench";
  size_t persist_every = argc > 4 ? std::stoul(argv[4]) : 0;
  std::filesystem::remove_all(dir);
  std::vector<std::string> lines;
  {
    std::ifstream in(argv[1]);
    std::string line;
    while (std::getline(in, line)) lines.push_back(std::move(line));
  }
  auto store = tally::store::Store::Open({.path = dir});
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 1;
  auto agg = tally::aggregate::Aggregator::Create(store->get());
  if (!agg) return std::fprintf(stderr, "%s\n", agg.error().message.c_str()), 1;
  (*agg)->set_stage(persist_every > 0);
  tally::event::EventParser parser;
  std::vector<tally::event::UsageEvent> pool(batch);
  std::vector<const tally::event::UsageEvent*> ptrs;
  using C = std::chrono::steady_clock;
  double parse_s = 0, apply_s = 0, persist_s = 0;
  size_t applied = 0, rejected = 0, batches = 0;
  const double cpu_start = CpuSeconds();
  auto t_start = C::now();
  size_t persisted_rows = 0, persists = 0;
  auto persist = [&] {
    persisted_rows += (*store)->staged().rows;
    ++persists;
    auto t0 = C::now();
    if (auto s = (*store)->Persist(); !s) {
      std::fprintf(stderr, "%s\n", s.error().message.c_str());
      std::exit(1);
    }
    persist_s += std::chrono::duration<double>(C::now() - t0).count();
  };
  for (size_t i = 0; i < lines.size(); i += batch) {
    auto t0 = C::now();
    ptrs.clear();
    size_t end = std::min(lines.size(), i + batch);
    for (size_t k = i; k < end; ++k) {
      auto* e = &pool[ptrs.size()];
      if (parser.ParseInto(lines[k], e)) {
        ptrs.push_back(e);
      } else {
        ++rejected;
      }
    }
    auto t1 = C::now();
    tally::aggregate::PartitionOffset off{"t", 0, static_cast<int64_t>(end)};
    auto st = (*agg)->Apply(ptrs, {&off, 1}, "bench");
    if (!st) return std::fprintf(stderr, "%s\n", st.error().message.c_str()), 1;
    applied += st->applied;
    auto t2 = C::now();
    parse_s += std::chrono::duration<double>(t1 - t0).count();
    apply_s += std::chrono::duration<double>(t2 - t1).count();
    if (persist_every > 0 && ++batches % persist_every == 0) persist();
  }
  if (persist_every > 0) persist();
  double total = std::chrono::duration<double>(C::now() - t_start).count();
  const double cpu = CpuSeconds() - cpu_start;
  std::printf("events=%zu applied=%zu rejected=%zu batch=%zu persist_every=%zu allocator=%s\n",
              lines.size(), applied, rejected, batch, persist_every,
              tally::AllocatorName().c_str());
  if (persists > 0) {
    std::printf("persists=%zu rows per persist=%.0f\n", persists,
                static_cast<double>(persisted_rows) / persists);
  }
  std::printf(
      "parse %.3f s (%.0f ev/s)  apply %.3f s (%.0f ev/s)  persist %.3f s  total %.3f s "
      "(%.0f ev/s)  cpu %.3f s (%.2f us/event)\n",
      parse_s, lines.size() / parse_s, apply_s, lines.size() / apply_s, persist_s, total,
      lines.size() / total, cpu, cpu * 1e6 / lines.size());
  return 0;
}
