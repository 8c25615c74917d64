// tallyd: the tally service. Wires the store, the ingest consumer (and, with no brokers
// configured, an embedded Kafka-protocol broker) and the HTTP API together: flags.h parses the
// command line, wiring.h builds the components in order, and main runs them until a signal.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <thread>

#include "common/thread.h"
#include "tallyd/cluster_wiring.h"
#include "tallyd/flags.h"
#include "tallyd/wiring.h"

namespace {

// The main thread polls for a signal (or ingest's end) this often.
constexpr auto kStopPollInterval = std::chrono::milliseconds(100);

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
void OnSignal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

// The query engines build and drop in-memory tables of tens of MB (the Super Agents table is
// patched into a new copy after each write): keep freed memory in the heap for reuse rather than
// returning it to the kernel, which made every such copy fault in fresh zeroed pages (measured:
// a quarter of tallyd's CPU time in the first pages after writes). With jemalloc (the default
// build) these only tune glibc's malloc, which then serves nothing; jemalloc reuses freed
// extents for seconds before it returns them.
void TuneMalloc() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

// Runs ingest on its own thread until SIGINT or SIGTERM (a failed ingest is logged and queries
// go on being served), then stops: the group stops steering the consumer, ingest stores what
// it consumed, the HTTP server stops. Returns the exit status.
int RunUntilStopped(tally::tallyd::Tallyd* t) {
  tally::ingest::Consumer* cons = t->consumer.get();
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  tally::Status ingest_status = tally::Ok();
  std::atomic<bool> ingest_done{false};
  std::thread ingest([&] {
    tally::NameCurrentThread("tally-ingest");
    try {
      ingest_status = cons->Run();
    } catch (const std::exception& e) {  // last resort: report, never take the server down
      ingest_status = tally::Fail(tally::ErrorCode::kInternal, e.what());
    }
    ingest_done.store(true);
  });
  while (!g_stop.load() && !ingest_done.load()) {
    std::this_thread::sleep_for(kStopPollInterval);
  }
  if (ingest_done.load() && !ingest_status) {
    spdlog::critical("ingest stopped: {}. Queries are still served from the views.",
                     ingest_status.error().message);
    while (!g_stop.load()) std::this_thread::sleep_for(kStopPollInterval);
  }
  spdlog::info("shutting down ({})", g_signal.load() ? strsignal(g_signal.load()) : "ingest ended");
  if (t->cluster) tally::tallyd::DetachConsumer(t->cluster.get());
  cons->Stop();
  ingest.join();
  t->server->Stop();
  return 0;
}

}  // namespace

namespace tallyd = tally::tallyd;

int main(int argc, char** argv) {
  TuneMalloc();
  tallyd::Flags flags;
  if (auto rc = tallyd::ParseFlags(argc, argv, &flags)) return *rc;
  spdlog::set_level(spdlog::level::from_str(flags.log_level));

  // Startup, in order; the components are torn down in reverse when `t` goes.
  tallyd::Tallyd t;
  if (auto rc = tallyd::CheckFlags(flags, &t)) return *rc;
  if (auto rc = tallyd::OpenDataDir(flags, &t)) return *rc;
  if (auto rc = tallyd::StartEmbeddedBroker(&flags, &t)) return *rc;
  if (auto rc = tallyd::OpenLiveViews(flags, &t)) return *rc;
  if (auto rc = tallyd::ConfigureIngest(flags, &t)) return *rc;
  if (auto rc = tallyd::JoinGroup(flags, &t)) return *rc;
  if (auto rc = tallyd::CreateConsumer(&t)) return *rc;
  tallyd::WireQueries(flags, &t);
  if (auto rc = tallyd::WireHttpIngest(flags, &t)) return *rc;
  if (auto rc = tallyd::StartHttpServer(flags, &t)) return *rc;
  return RunUntilStopped(&t);
}
