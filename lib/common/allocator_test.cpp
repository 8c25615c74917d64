#include "common/allocator.h"

#include <gtest/gtest.h>

#include <memory>

namespace tally {
namespace {

TEST(AllocatorTest, NamesTheMallocThatServesTheProcess) {
  auto block = std::make_unique<char[]>(1 << 20);  // something allocated
  block[0] = 1;
#ifdef TALLY_EXPECT_JEMALLOC
  // Built with TALLY_JEMALLOC: a test binary links it like tallyd and tally do.
  EXPECT_EQ(AllocatorName().rfind("jemalloc ", 0), 0u) << AllocatorName();
#else
  EXPECT_EQ(AllocatorName(), "glibc malloc");
#endif
}

}  // namespace
}  // namespace tally
