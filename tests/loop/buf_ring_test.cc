// BufRing spare buffers: lowest id first, and trim_spares giving back the pages of a free tail.
#include "tokentap/loop/buf_ring.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace tokentap {
namespace {

class BufRingSpares : public ::testing::Test {
 protected:
  void SetUp() override {
    if (io_uring_queue_init(8, &ring_, 0) != 0) GTEST_SKIP() << "io_uring unavailable";
    ready_ = true;
    std::string error;
    if (!bufs_.init(&ring_, ring_count, spare_count, &error)) GTEST_SKIP() << error;
  }
  void TearDown() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }
  // Resident pages of spare buffers [first, first + n) (mincore).
  std::size_t resident(std::uint16_t first, std::size_t n) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> vec(n * buf_bytes / page);
    EXPECT_EQ(mincore(bufs_.data(first), n * buf_bytes, vec.data()), 0);
    std::size_t pages = 0;
    for (const unsigned char v : vec) pages += v & 1;
    return pages;
  }
  static constexpr std::uint32_t ring_count = 8;
  static constexpr std::uint32_t spare_count = 256;
  io_uring ring_{};
  bool ready_ = false;
  BufRing bufs_;
};

TEST_F(BufRingSpares, LowestFreeIdFirst) {
  EXPECT_EQ(bufs_.alloc_spare(), 8);
  EXPECT_EQ(bufs_.alloc_spare(), 9);
  EXPECT_EQ(bufs_.alloc_spare(), 10);
  bufs_.unref(9);
  EXPECT_EQ(bufs_.alloc_spare(), 9);
  EXPECT_EQ(bufs_.alloc_spare(), 11);
}

TEST_F(BufRingSpares, ReserveIsKeptForUrgentAnswers) {
  std::vector<int> got;
  for (int id; (id = bufs_.alloc_spare()) >= 0;) got.push_back(id);
  EXPECT_EQ(got.size(), spare_count - buf_spare_reserve);
  EXPECT_GE(bufs_.alloc_spare(/*urgent=*/true), 0);
}

TEST_F(BufRingSpares, TrimGivesBackTheFreeTailAfterABurst) {
  std::vector<std::uint16_t> ids;
  for (int i = 0; i < 200; ++i) {
    const int id = bufs_.alloc_spare();
    ASSERT_GE(id, 0);
    ids.push_back(static_cast<std::uint16_t>(id));
    bufs_.data(ids.back())[0] = 'x';
    bufs_.data(ids.back())[buf_bytes - 1] = 'y';
  }
  EXPECT_GE(resident(ring_count, 200), 200u);
  for (std::size_t i = 10; i < ids.size(); ++i) bufs_.unref(ids[i]);  // ten stay in use
  EXPECT_EQ(bufs_.trim_spares(1u << 30), 0u);  // under the threshold: nothing given back
  EXPECT_EQ(bufs_.trim_spares(0), 190u * buf_bytes);
  EXPECT_EQ(resident(ring_count + 10, 190), 0u);
  EXPECT_GE(resident(ring_count, 10), 10u);  // buffers in use keep their pages
  EXPECT_EQ(bufs_.data(ids[9])[0], 'x');
  EXPECT_EQ(bufs_.trim_spares(0), 0u);
  // A given-back buffer is usable again (zero-filled).
  const int again = bufs_.alloc_spare();
  EXPECT_EQ(again, ring_count + 10);
  EXPECT_EQ(bufs_.data(static_cast<std::uint16_t>(again))[0], 0);
}

}  // namespace
}  // namespace tokentap
