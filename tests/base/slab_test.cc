// Slab: lowest-first allocation, and trim() giving the pages of a free tail back to the kernel.
#include "tokentap/base/slab.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace tokentap {
namespace {

struct Counted {
  static inline int live = 0;
  char payload[1000] = {};
  Counted() { ++live; }
  ~Counted() { --live; }
};

// Pages of [first, first + bytes) the kernel holds resident right now (mincore).
std::size_t resident_pages(const void* first, std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((bytes + page - 1) / page);
  EXPECT_EQ(mincore(const_cast<void*>(first), bytes, vec.data()), 0);
  std::size_t n = 0;
  for (const unsigned char v : vec) n += v & 1;
  return n;
}

TEST(Slab, HandsOutTheLowestFreeSlotFirst) {
  Slab<Counted> slab;
  ASSERT_TRUE(slab.init(200));
  for (std::uint32_t i = 0; i < 150; ++i) ASSERT_EQ(slab.alloc(), i);
  slab.release(100);
  slab.release(7);
  slab.release(130);
  EXPECT_EQ(slab.alloc(), 7u);
  EXPECT_EQ(slab.alloc(), 100u);
  EXPECT_EQ(slab.alloc(), 130u);
  EXPECT_EQ(slab.alloc(), 150u);  // nothing free below: a new object
  EXPECT_EQ(slab.used(), 151u);
  EXPECT_EQ(Counted::live, 151);
}

TEST(Slab, FullSlabRefusesThenReusesAReleasedSlot) {
  Slab<Counted> slab;
  ASSERT_TRUE(slab.init(3));
  for (int i = 0; i < 3; ++i) ASSERT_NE(slab.alloc(), Slab<Counted>::none);
  EXPECT_EQ(slab.alloc(), Slab<Counted>::none);
  slab.release(1);
  EXPECT_EQ(slab.alloc(), 1u);
}

TEST(Slab, TrimDestroysTheFreeTailAndReturnsItsPages) {
  const int live_before = Counted::live;
  {
    Slab<Counted> slab;
    constexpr std::uint32_t burst = 10'000;
    ASSERT_TRUE(slab.init(burst));
    std::vector<std::uint32_t> slots;
    for (std::uint32_t i = 0; i < burst; ++i) slots.push_back(slab.alloc());
    const void* base = &slab[0];
    const std::size_t bytes = sizeof(Counted) * burst;
    for (std::uint32_t i = 0; i < burst; ++i) slab[i].payload[0] = 1;  // touch every page
    const std::size_t resident_full = resident_pages(base, bytes);
    EXPECT_GE(resident_full * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), bytes);

    // Ten connections stay, at the bottom; the rest of the burst ends.
    for (std::uint32_t i = 10; i < burst; ++i) slab.release(slots[i]);
    EXPECT_EQ(slab.trim(0) > 0, true);
    EXPECT_EQ(slab.constructed(), 10u);
    EXPECT_FALSE(slab.valid(10));
    EXPECT_EQ(Counted::live - live_before, 10);
    EXPECT_LE(resident_pages(base, bytes), 4u);  // 10 × 1000 B live: three pages
    EXPECT_EQ(slab[9].payload[0], 1);           // live objects are untouched

    // A trimmed slot is constructed afresh, zeroed, when it is needed again.
    EXPECT_EQ(slab.alloc(), 10u);
    EXPECT_EQ(slab[10].payload[0], 0);
    EXPECT_EQ(slab.trim(0), 0u);  // nothing free at the top
  }
  EXPECT_EQ(Counted::live, live_before);
}

TEST(Slab, TrimBelowTheThresholdKeepsPagesButStillDestroysTheTail) {
  Slab<Counted> slab;
  ASSERT_TRUE(slab.init(100));
  for (int i = 0; i < 100; ++i) (void)slab.alloc();
  for (std::uint32_t i = 50; i < 100; ++i) slab.release(i);
  const std::size_t committed = slab.committed_bytes();
  EXPECT_EQ(slab.trim(1u << 30), 0u);
  EXPECT_EQ(slab.committed_bytes(), committed);
  EXPECT_EQ(slab.constructed(), 50u);
  EXPECT_GT(slab.trim(0), 0u);
  EXPECT_LT(slab.committed_bytes(), committed);
}

TEST(Slab, AHoleBelowALiveTopSlotIsReusedNotTrimmed) {
  Slab<Counted> slab;
  ASSERT_TRUE(slab.init(1000));
  for (int i = 0; i < 1000; ++i) (void)slab.alloc();
  for (std::uint32_t i = 0; i < 999; ++i) slab.release(i);
  EXPECT_EQ(slab.trim(0), 0u);  // slot 999 is live: its pages and all below stay
  EXPECT_EQ(slab.constructed(), 1000u);
  EXPECT_EQ(slab.alloc(), 0u);
  slab.release(999);
  EXPECT_GT(slab.trim(0), 0u);
  EXPECT_EQ(slab.constructed(), 1u);
}

}  // namespace
}  // namespace tokentap
