// UsageQueue: order, full ring refusal and reuse after a drain, and one producer thread against
// one consumer thread losing and duplicating nothing.
#include "tokentap/ledger/usage_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace tokentap::ledger {
namespace {

UsageRecord numbered(std::uint32_t n) {
  UsageRecord r;
  r.prompt_tokens = n;
  return r;
}

TEST(UsageQueue, FifoAndFull) {
  UsageQueue q(4);
  for (std::uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(q.push(numbered(i)));
  EXPECT_FALSE(q.push(numbered(99)));  // full: refused, not overwritten
  std::vector<std::uint32_t> seen;
  EXPECT_EQ(q.drain([&](const UsageRecord& r) { seen.push_back(r.prompt_tokens); }), 4u);
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(q.drain([](const UsageRecord&) { FAIL(); }), 0u);
  for (std::uint32_t i = 10; i < 13; ++i) EXPECT_TRUE(q.push(numbered(i)));  // wraps around
  seen.clear();
  q.drain([&](const UsageRecord& r) { seen.push_back(r.prompt_tokens); });
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{10, 11, 12}));
}

TEST(UsageQueue, OneProducerOneConsumerThread) {
  constexpr std::uint32_t total = 200'000;
  UsageQueue q(64);
  std::atomic<bool> done{false};
  std::uint64_t pushed = 0;
  std::uint64_t refused = 0;
  std::thread producer([&] {
    for (std::uint32_t i = 0; i < total; ++i) {
      while (!q.push(numbered(i))) ++refused;  // the test retries; the ledger would drop
      ++pushed;
    }
    done = true;
  });
  std::uint32_t expect = 0;
  bool in_order = true;
  while (!done.load() || expect < total) {
    q.drain([&](const UsageRecord& r) { in_order = in_order && r.prompt_tokens == expect++; });
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expect, total);
  EXPECT_EQ(pushed, total);
}

}  // namespace
}  // namespace tokentap::ledger
