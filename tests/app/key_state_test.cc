// key_state: a restart keeps the day's tokens (ledger → tokens_per_day windows), keys the config
// dropped are skipped, a first start seeds nothing, and the ledger's names for record ids.
#include "tokentap/app/key_state.h"

#include <gtest/gtest.h>

#include "ledger/temp_dir.h"
#include "tokentap/auth/digest.h"

namespace tokentap {
namespace {

constexpr std::uint64_t may1 = 1'714'521'600;  // 2024-05-01T00:00:00Z

Config two_keys() {
  Config cfg;
  for (const char* name : {"alice", "bob"}) {
    KeyConfig k;
    k.name = name;
    k.sha256 = *auth::sha256(std::string("tt-") + name);
    k.limits.tokens_per_day = 1000;
    cfg.keys.push_back(k);
  }
  BackendConfig b;
  b.name = "gpu0";
  cfg.backends.push_back(b);
  return cfg;
}

auth::KeyTable table_of(const Config& cfg) {
  auth::KeyTable t;
  std::string error;
  EXPECT_TRUE(auth::KeyTable::build(cfg, &t, &error)) << error;
  return t;
}

TEST(KeyState, ARestartKeepsTheDaysTokens) {
  const test::TempDir dir;
  const Config cfg = two_keys();
  const auth::KeyTable keys = table_of(cfg);
  ModelTable models(8);
  const ModelId llama = models.intern("llama3");
  const KeyLedgerLabels labels(keys, models, cfg);
  {
    // The first run: alice uses 900 tokens, bob 10, then tokentap stops.
    std::string error;
    auto l = ledger::Ledger::open(dir.path, 1, &labels, &error);
    ASSERT_TRUE(l) << error;
    ledger::UsageRecord r;
    r.unix_s = may1 + 100;
    r.model = llama;
    r.prompt_tokens = 400;
    r.completion_tokens = 500;
    ASSERT_TRUE(l->record(0, r));
    r.key = 1;
    r.prompt_tokens = 10;
    r.completion_tokens = 0;
    ASSERT_TRUE(l->record(0, r));
    r.key = 0;
    r.unix_s = may1 - 100;  // yesterday's: not today's window
    ASSERT_TRUE(l->record(0, r));
  }
  // The second run, later that day.
  auth::KeyWindow windows(keys.slot_limits());
  std::string error;
  ASSERT_TRUE(seed_day_windows(dir.path, keys, &windows, may1 + 7200, &error)) << error;
  EXPECT_EQ(windows.remaining(0, auth::Window::tokens_day, may1 + 7200), 100u);
  EXPECT_EQ(windows.remaining(1, auth::Window::tokens_day, may1 + 7200), 990u);
  EXPECT_EQ(windows.remaining(keys.anonymous_id(), auth::Window::tokens_day, may1), std::nullopt);
}

TEST(KeyState, FirstStartAndDroppedKeys) {
  const test::TempDir dir;
  const Config cfg = two_keys();
  const auth::KeyTable keys = table_of(cfg);
  auth::KeyWindow windows(keys.slot_limits());
  std::string error;
  ASSERT_TRUE(seed_day_windows(dir.path, keys, &windows, may1, &error)) << error;  // no ledger
  EXPECT_EQ(windows.remaining(0, auth::Window::tokens_day, may1), 1000u);
  const ledger::KeyDayTokens day[] = {{"carol", 500}, {"bob", 1000}};
  seed_day_windows(day, keys, &windows, may1);
  EXPECT_EQ(windows.remaining(1, auth::Window::tokens_day, may1), 0u);
  EXPECT_EQ(windows.try_admit(1, may1), auth::Refusal::tokens);
  EXPECT_EQ(windows.remaining(0, auth::Window::tokens_day, may1), 1000u);
}

TEST(KeyState, LabelsForRecordIds) {
  const Config cfg = two_keys();
  const auth::KeyTable keys = table_of(cfg);
  ModelTable models(8);
  const ModelId qwen = models.intern("qwen2.5:7b");
  const KeyLedgerLabels labels(keys, models, cfg);
  EXPECT_EQ(labels.key_name(1), "bob");
  EXPECT_EQ(labels.key_name(keys.anonymous_id()), "anonymous");
  EXPECT_EQ(labels.key_name(99), "unknown");
  EXPECT_EQ(labels.model_name(qwen), "qwen2.5:7b");
  EXPECT_EQ(labels.model_name(model_unknown), "unknown");
  EXPECT_EQ(labels.model_name(500), "unknown");
  EXPECT_EQ(labels.backend_name(0), "gpu0");
  EXPECT_EQ(labels.backend_name(3), "unknown");
}

}  // namespace
}  // namespace tokentap
