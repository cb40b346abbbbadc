// ModelTable: reserved ids, the per-process cap, validation, and concurrent interning.
#include "tokentap/obs/model_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace tokentap {
namespace {

TEST(ModelTable, ReservedIdsHaveTheirLabels) {
  ModelTable t(4);
  EXPECT_EQ(t.name(model_unknown), "unknown");
  EXPECT_EQ(t.name(model_overflow), "__overflow__");
  EXPECT_EQ(t.id_count(), 2u);
  EXPECT_EQ(t.id_capacity(), 6u);
}

TEST(ModelTable, SameNameSameIdAndNamesRoundTrip) {
  ModelTable t(8);
  const ModelId a = t.intern("llama3.2:1b");
  const ModelId b = t.intern("qwen2.5:0.5b");
  EXPECT_GE(a, model_first_named);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.intern("llama3.2:1b"), a);
  EXPECT_EQ(t.name(a), "llama3.2:1b");
  EXPECT_EQ(t.name(b), "qwen2.5:0.5b");
  EXPECT_EQ(t.id_count(), 4u);
}

TEST(ModelTable, PastTheCapNewNamesOverflowOldOnesKeepTheirIds) {
  ModelTable t(3);
  const ModelId a = t.intern("a");
  const ModelId b = t.intern("b");
  const ModelId c = t.intern("c");
  EXPECT_EQ(t.intern("d"), model_overflow);
  EXPECT_EQ(t.intern("e"), model_overflow);
  EXPECT_EQ(t.intern("a"), a);
  EXPECT_EQ(t.intern("b"), b);
  EXPECT_EQ(t.intern("c"), c);
  EXPECT_EQ(t.id_count(), 5u);  // 3 names + unknown + __overflow__
}

TEST(ModelTable, InvalidNamesAreUnknown) {
  ModelTable t(16);
  const std::string too_long(model_name_bytes_max + 1, 'x');
  for (const std::string& bad :
       {std::string(), too_long, std::string("a\nb"), std::string("tab\there"),
        std::string("nul\0x", 5), std::string("del\x7f"), std::string("\xc0\xaf"),  // overlong
        std::string("\xed\xa0\x80"),                                                // surrogate
        std::string("\xf4\x90\x80\x80"),                                            // > U+10FFFF
        std::string("cut\xe2\x82"), std::string("\x80lead"), std::string("c1\xc2\x85")}) {
    EXPECT_FALSE(is_valid_model_name(bad)) << bad;
    EXPECT_EQ(t.intern(bad), model_unknown) << bad;
  }
  EXPECT_EQ(t.id_count(), 2u);  // nothing was interned
}

TEST(ModelTable, ValidUtf8AndTheLongestNameAreKept) {
  ModelTable t(16);
  const std::string longest(model_name_bytes_max, 'm');
  for (const std::string& good : {longest, std::string("modèle-日本語-🦙"),
                                  std::string("hf.co/org/repo:Q4_K_M"), std::string("a\"b\\c")}) {
    EXPECT_TRUE(is_valid_model_name(good)) << good;
    const ModelId id = t.intern(good);
    EXPECT_GE(id, model_first_named);
    EXPECT_EQ(t.name(id), good);
  }
}

TEST(ModelTable, LiteralReservedNamesMapToReservedIds) {
  ModelTable t(4);
  EXPECT_EQ(t.intern("unknown"), model_unknown);
  EXPECT_EQ(t.intern("__overflow__"), model_overflow);
  EXPECT_EQ(t.id_count(), 2u);
}

TEST(ModelTable, ManyNamesWithCollidingProbesAllResolve) {
  ModelTable t(512);
  std::vector<ModelId> ids;
  for (int i = 0; i < 512; ++i) ids.push_back(t.intern("model-" + std::to_string(i)));
  for (int i = 0; i < 512; ++i) {
    ASSERT_EQ(t.intern("model-" + std::to_string(i)), ids[i]);
    ASSERT_EQ(t.name(ids[i]), "model-" + std::to_string(i));
  }
  std::vector<ModelId> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_EQ(t.intern("one-too-many"), model_overflow);
}

TEST(ModelTable, ConcurrentInterningIsConsistentAndCapped) {
  constexpr std::uint32_t cap = 200;
  constexpr int names = 600;  // three times the cap: most threads race on the last ids
  constexpr int threads = 4;
  for (int round = 0; round < 20; ++round) {
    ModelTable t(cap);
    std::vector<std::vector<ModelId>> seen(threads, std::vector<ModelId>(names));
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        std::vector<int> order(names);
        for (int i = 0; i < names; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(round * 31 + w));
        for (const int i : order) seen[w][i] = t.intern("n" + std::to_string(i));
      });
    }
    for (auto& th : workers) th.join();
    std::vector<int> named_per_id(t.id_capacity(), 0);
    int overflowed = 0;
    for (int i = 0; i < names; ++i) {
      const ModelId id = seen[0][i];
      for (int w = 1; w < threads; ++w) ASSERT_EQ(seen[w][i], id) << "name " << i;
      if (id == model_overflow) {
        ++overflowed;
        continue;
      }
      ASSERT_LT(id, t.id_count());
      ASSERT_EQ(t.name(id), "n" + std::to_string(i));
      ASSERT_EQ(++named_per_id[id], 1) << "two names share id " << id;
    }
    EXPECT_EQ(t.id_count(), cap + 2);
    EXPECT_EQ(names - overflowed, static_cast<int>(cap));
  }
}

}  // namespace
}  // namespace tokentap
