// Parse-only benchmark of EventParser::ParseInto: the NDJSON file is loaded into one buffer (as
// a line reader holds it) and every line is parsed `rounds` times over, reporting ns/event per
// round and their median. No store, no aggregation: isolates the parser from pipeline_bench.
// Also reports the thread's CPU time per event, which is steadier than wall time when other work
// shares the machine.
// Usage: parse_bench FILE.ndjson [rounds]
//        parse_bench FILE.ndjson dump   one line per input: every field, or the rejection (to
//                                       diff the results of two builds of the parser)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/event_parser.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.ndjson [rounds]\n", argv[0]);
    return 2;
  }
  const bool dump = argc > 2 && std::string_view(argv[2]) == "dump";
  const int rounds = argc > 2 && !dump ? std::stoi(argv[2]) : 5;
  std::string text;
  {
    std::ifstream in(argv[1], std::ios::binary | std::ios::ate);
    text.resize(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
  }
  const size_t text_size = text.size();
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text_size;) {
    size_t nl = text.find('\n', pos);
    if (nl >= text_size) nl = text_size;
    lines.emplace_back(text.data() + pos, nl - pos);
    pos = nl + 1;
  }
  if (lines.empty()) return std::fprintf(stderr, "no lines in %s\n", argv[1]), 1;

  tally::event::EventParser parser;
  tally::event::UsageEvent event;
  if (dump) {
    auto num = [](const auto& v) { return v ? std::to_string(*v) : std::string("-"); };
    auto dbl = [](const std::optional<double>& v) {
      char buf[32];
      if (!v) return std::string("-");
      std::snprintf(buf, sizeof buf, "%.17g", *v);
      return std::string(buf);
    };
    for (std::string_view line : lines) {
      tally::Status st = parser.ParseInto(line, &event);
      if (!st) {
        std::printf("ERR|%d|%s|%s|%.*s\n", static_cast<int>(st.error().code),
                    st.error().field.c_str(), st.error().message.c_str(),
                    static_cast<int>(tally::event::ReasonCategory(st.error()).size()),
                    tally::event::ReasonCategory(st.error()).data());
        continue;
      }
      const auto& e = event;
      std::printf(
          "OK|%s|%s|%d|%d|%lld|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", e.id.c_str(),
          e.source.c_str(), static_cast<int>(e.kind), static_cast<int>(e.action),
          static_cast<long long>(e.time_ms), e.workspace_id.c_str(), e.organization_id.c_str(),
          e.project_id.c_str(), e.user_id.c_str(), e.user_name.c_str(), e.user_email.c_str(),
          e.user_photo.c_str(), e.entity_id.c_str(), e.entity_name.c_str(),
          e.entity_visibility.c_str(), e.entity_owner_user_id.c_str(), dbl(e.duration_ms).c_str(),
          num(e.tokens).c_str(), dbl(e.cost_usd).c_str(), dbl(e.message_credits).c_str(),
          dbl(e.integration_credits).c_str(), e.status.c_str());
    }
    return 0;
  }
  std::vector<double> ns_per_event, cpu_ns_per_event;
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  size_t accepted = 0, rejected = 0;
  int64_t checksum = 0;  // keeps the results observable
  using C = std::chrono::steady_clock;
  for (int r = 0; r < rounds; ++r) {
    accepted = rejected = 0;
    auto t0 = C::now();
    double cpu0 = cpu_now();
    for (std::string_view line : lines) {
      tally::Status st = parser.ParseInto(line, &event);
      if (st) {
        ++accepted;
        checksum += event.time_ms + static_cast<int64_t>(event.user_id.size());
      } else {
        ++rejected;
      }
    }
    double s = std::chrono::duration<double>(C::now() - t0).count();
    ns_per_event.push_back(s * 1e9 / static_cast<double>(lines.size()));
    cpu_ns_per_event.push_back((cpu_now() - cpu0) / static_cast<double>(lines.size()));
  }
  std::vector<double> sorted = ns_per_event, cpu_sorted = cpu_ns_per_event;
  std::sort(sorted.begin(), sorted.end());
  std::sort(cpu_sorted.begin(), cpu_sorted.end());
  std::printf("events=%zu accepted=%zu rejected=%zu bytes/event=%.0f checksum=%lld\n", lines.size(),
              accepted, rejected,
              static_cast<double>(text_size) / static_cast<double>(lines.size()),
              static_cast<long long>(checksum));
  std::printf("rounds:");
  for (double v : ns_per_event) std::printf(" %.1f", v);
  std::printf("\nmedian %.1f ns/event  min %.1f ns/event\n", sorted[sorted.size() / 2], sorted[0]);
  std::printf("cpu %.1f ns/event  min %.1f ns/event (thread CPU time, median of rounds)\n",
              cpu_sorted[cpu_sorted.size() / 2], cpu_sorted[0]);
  return 0;
}
