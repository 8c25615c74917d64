#include "common/thread.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace tally {

void NameCurrentThread(std::string_view name) {
  const std::string truncated(name.substr(0, std::min<size_t>(name.size(), 15)));
  pthread_setname_np(pthread_self(), truncated.c_str());
}

bool SetCurrentThreadNice(int nice) {
  // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  return ::setpriority(PRIO_PROCESS, tid, nice) == 0;
}

}  // namespace tally
