// user_data codec: round trips, generation wrap-around and stale-CQE detection.
#include "tokentap/loop/user_data.h"

#include <gtest/gtest.h>

namespace tokentap {
namespace {

TEST(UserData, RoundTripsEveryOp) {
  for (unsigned op = 0; op < static_cast<unsigned>(Op::count_); ++op) {
    const UserData in{0xfffffffeu, 0x123456, static_cast<Op>(op)};
    const UserData out = UserData::decode(in.encode());
    EXPECT_EQ(out.slot, in.slot);
    EXPECT_EQ(out.generation, in.generation);
    EXPECT_EQ(out.op, in.op);
  }
}

TEST(UserData, GenerationWrapsAt24Bits) {
  const UserData in{1, (1u << 24) + 5, Op::client_recv};
  const UserData out = UserData::decode(in.encode());
  EXPECT_EQ(out.generation, 5u);
  EXPECT_TRUE(out.matches((1u << 24) + 5));
  EXPECT_TRUE(out.matches(5));
}

TEST(UserData, StaleGenerationDoesNotMatch) {
  const UserData tag{3, 41, Op::upstream_recv};
  const UserData back = UserData::decode(tag.encode());
  EXPECT_TRUE(back.matches(41));
  EXPECT_FALSE(back.matches(42));
}

}  // namespace
}  // namespace tokentap
