#pragma once
// Names and CPU priority of the calling thread, so that operators see tally's threads in `top -H`
// and the kernel can let query threads run before ingest threads when both want a core.
//
//   tally::NameCurrentThread("tally-http");   // shows in top -H, ps -T, perf
//   tally::SetCurrentThreadNice(5);           // ingest yields to queries under contention

#include <string_view>

namespace tally {

// Sets the calling thread's name (Linux keeps the first 15 bytes). Best effort: errors are
// ignored. Never call it on the main thread (it would rename the process).
void NameCurrentThread(std::string_view name);

// Sets the calling thread's nice value (-20..19; higher = yields more); Linux applies it to the
// thread alone. Returns false (nothing changed) if the kernel refused, e.g. a negative value
// without CAP_SYS_NICE.
bool SetCurrentThreadNice(int nice);

}  // namespace tally
