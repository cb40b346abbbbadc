// Fleet::apply, a reload's backend list applied to a running fleet: slots kept by name, removed
// names out of rotation with their slot kept, revived with fresh health and a slow start, target
// generations that tell shards which pools to close, and a refused reload that changes nothing.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "tokentap/upstream/backend.h"

namespace tokentap {
namespace {

constexpr std::uint64_t t0_ms = 1'000'000;

BackendConfig backend(const std::string& name, std::uint16_t port, std::uint32_t weight = 1) {
  BackendConfig b;
  b.name = name;
  b.weight = weight;
  auto* a = reinterpret_cast<sockaddr_in*>(&b.endpoint.addr);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  b.endpoint.addr_len = sizeof(sockaddr_in);
  b.host_header = "127.0.0.1:" + std::to_string(port);
  return b;
}

std::uint32_t generation_of(const Fleet& f, std::uint32_t i, BackendTarget* t = nullptr) {
  BackendTarget scratch;
  std::uint32_t g = 0;
  f.copy_target(i, t != nullptr ? t : &scratch, &g);
  return g;
}

TEST(FleetReload, KeepsSlotsByNameAndReportsWhatChanged) {
  Fleet f;
  ASSERT_EQ(f.add(backend("a", 1000)), 0u);
  ASSERT_EQ(f.add(backend("b", 1001)), 1u);
  EXPECT_TRUE(f.routing());
  const std::uint64_t v0 = f.targets_version();
  const std::uint32_t gen_b = generation_of(f, 1);
  const std::vector<BackendConfig> next{backend("b", 1001, 5), backend("c", 1002)};
  FleetChange change;
  std::string error;
  ASSERT_TRUE(f.apply(next, t0_ms, &change, &error)) << error;
  EXPECT_EQ(change.added, std::vector<std::string>{"c"});
  EXPECT_EQ(change.removed, std::vector<std::string>{"a"});
  EXPECT_EQ(change.changed, std::vector<std::string>{"b"});
  EXPECT_GT(f.targets_version(), v0);
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.configured_count(), 2u);
  EXPECT_FALSE(f.configured(0));
  EXPECT_FALSE(f.healthy(0, t0_ms)) << "a removed backend is out of rotation";
  EXPECT_EQ(f.find("a"), no_backend) << "and cannot be pinned";
  EXPECT_EQ(f.find("c"), 2u);
  EXPECT_EQ(f.weight(1), 5u);
  EXPECT_EQ(generation_of(f, 1), gen_b) << "same address: b's pool stays";
  EXPECT_NE(generation_of(f, 0), 0u) << "a's pools close";
  BackendTarget t;
  generation_of(f, 2, &t);
  EXPECT_EQ(t.host_header, "127.0.0.1:1002");
}

TEST(FleetReload, ARemovedNameComesBackInItsSlotWithFreshHealthAndASlowStart) {
  Fleet f;
  ASSERT_EQ(f.add(backend("a", 1000)), 0u);
  ASSERT_EQ(f.add(backend("b", 1001)), 1u);
  f.acquire(0);  // an exchange in progress on a when it is removed
  for (int i = 0; i < 3; ++i) (void)f.report_check(0, false, t0_ms);
  EXPECT_FALSE(f.healthy(0, t0_ms));
  FleetChange change;
  std::string error;
  ASSERT_TRUE(f.apply(std::vector<BackendConfig>{backend("b", 1001)}, t0_ms, &change, &error));
  EXPECT_FALSE(f.routing()) << "one backend left behaves as one upstream";
  EXPECT_EQ(f.sole(), 1u);
  f.release(0);  // the exchange ends after the removal: the count stays exact
  EXPECT_EQ(f.in_flight(0), 0u);
  FleetChange back;
  ASSERT_TRUE(f.apply(std::vector<BackendConfig>{backend("a", 1000), backend("b", 1001)},
                      t0_ms + 5, &back, &error));
  EXPECT_EQ(back.added, std::vector<std::string>{"a"});
  EXPECT_EQ(f.size(), 2u) << "the old slot, not a new one";
  EXPECT_TRUE(f.routing());
  EXPECT_EQ(f.sole(), no_backend);
  EXPECT_TRUE(f.healthy(0, t0_ms + 5)) << "fresh health, optimistic as at start";
  EXPECT_EQ(f.at(0).in_rotation_since_ms(), t0_ms + 5) << "slow start from now";
}

TEST(FleetReload, AMovedUrlBumpsTheGenerationAndCountsAsAChange) {
  Fleet f;
  ASSERT_EQ(f.add(backend("a", 1000)), 0u);
  const std::uint32_t g = generation_of(f, 0);
  FleetChange change;
  std::string error;
  ASSERT_TRUE(f.apply(std::vector<BackendConfig>{backend("a", 2000)}, t0_ms, &change, &error));
  EXPECT_EQ(change.changed, std::vector<std::string>{"a"});
  EXPECT_NE(generation_of(f, 0), g);
  FleetChange none;
  ASSERT_TRUE(f.apply(std::vector<BackendConfig>{backend("a", 2000)}, t0_ms, &none, &error));
  EXPECT_TRUE(none.added.empty() && none.removed.empty() && none.changed.empty());
}

TEST(FleetReload, MoreDistinctNamesThanSlotsIsRefusedWithNothingChanged) {
  Fleet f;
  for (std::uint32_t i = 0; i < fleet_backends_max; ++i) {
    ASSERT_EQ(f.add(backend("n" + std::to_string(i), 1000)), i);
  }
  const std::uint64_t v = f.targets_version();
  FleetChange change;
  std::string error;
  EXPECT_FALSE(f.apply(std::vector<BackendConfig>{backend("new", 1000)}, t0_ms, &change, &error));
  EXPECT_NE(error.find("restart"), std::string::npos) << error;
  EXPECT_EQ(f.targets_version(), v);
  EXPECT_EQ(f.configured_count(), fleet_backends_max);
  // Names already known still reload: half removed, then back.
  std::vector<BackendConfig> half;
  for (std::uint32_t i = 0; i < fleet_backends_max / 2; ++i) {
    half.push_back(backend("n" + std::to_string(i), 1000));
  }
  EXPECT_TRUE(f.apply(half, t0_ms, &change, &error)) << error;
  EXPECT_EQ(f.configured_count(), fleet_backends_max / 2);
}

}  // namespace
}  // namespace tokentap
