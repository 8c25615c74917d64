#pragma once
// The name of the calling thread, so that operators tell tally's threads apart in `top -H`,
// `ps -T` and `perf`.
//
//   tally::NameCurrentThread("tally-http");

#include <string_view>

namespace tally {

// Sets the calling thread's name (Linux keeps the first 15 bytes). Best effort: errors are
// ignored. Never call it on the main thread (it would rename the process).
void NameCurrentThread(std::string_view name);

}  // namespace tally
