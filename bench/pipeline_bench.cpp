// In-process ingest pipeline benchmark (no Kafka): NDJSON -> EventParser -> Aggregator ->
// RocksDB, in batches, reporting time per phase. Separates the cost of tally's own code from the
// broker's. Usage: pipeline_bench FILE.ndjson [batch_size] [data_dir]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "event/event_parser.h"
#include "store/store.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.ndjson [batch_size] [data_dir]\n", argv[0]);
    return 2;
  }
  size_t batch = argc > 2 ? std::stoul(argv[2]) : 20000;
  std::string dir = argc > 3 ? argv[3] : "/tmp/tally_pipeline_bench";
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
  tally::event::EventParser parser;
  std::vector<tally::event::UsageEvent> pool(batch);
  std::vector<const tally::event::UsageEvent*> ptrs;
  using C = std::chrono::steady_clock;
  double parse_s = 0, apply_s = 0;
  size_t applied = 0, rejected = 0;
  auto t_start = C::now();
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
  }
  double total = std::chrono::duration<double>(C::now() - t_start).count();
  std::printf("events=%zu applied=%zu rejected=%zu batch=%zu\n", lines.size(), applied, rejected,
              batch);
  std::printf("parse %.3f s (%.0f ev/s)  apply %.3f s (%.0f ev/s)  total %.3f s (%.0f ev/s)\n",
              parse_s, lines.size() / parse_s, apply_s, lines.size() / apply_s, total,
              lines.size() / total);
  return 0;
}
