#include "common/allocator.h"

#include <cstddef>

// jemalloc's control interface, declared weak: it resolves only when the executable links
// jemalloc, so the library itself does not depend on it.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

namespace tally {

std::string AllocatorName() {
  if (mallctl == nullptr) return "glibc malloc";
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) != 0 || version == nullptr) {
    return "jemalloc";
  }
  return std::string("jemalloc ") + version;
}

}  // namespace tally
