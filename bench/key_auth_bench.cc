// Per-request costs of API keys (issue 18): what the proxy will pay once per request, never per
// byte. Credential extraction from the head's fields, the constant-time lookup (one SHA-256,
// then a compare against every key: its cost grows with the key count, by design), the model
// check, admission into a limited key's window (uncontended, and 8 threads on one key), a
// charge, and one ledger record (a queue push; the writer thread drains it meanwhile).
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tokentap/auth/credential.h"
#include "tokentap/auth/key_table.h"
#include "tokentap/auth/key_window.h"
#include "tokentap/ledger/ledger.h"

namespace tokentap {
namespace {

constexpr std::uint64_t now_s = 1'714'566'896;

// STYLE §22: every bench records its environment.
const bool context_recorded = [] {
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", std::string(u.release));
  benchmark::AddCustomContext("keys_max", std::to_string(keys_max));
  benchmark::AddCustomContext("ledger_queue_records", std::to_string(ledger::queue_records_max));
  return true;
}();

auth::KeyTable table_with(std::int64_t n) {
  Config cfg;
  for (std::int64_t i = 0; i < n; ++i) {
    KeyConfig k;
    k.name = "k" + std::to_string(i);
    k.sha256 = *auth::sha256("tt-secret-" + std::to_string(i));
    k.models = {"llama3", "qwen2.5*"};
    k.limits = KeyLimits{1'000'000'000, 10'000'000'000, 1'000'000'000'000};
    cfg.keys.push_back(k);
  }
  auth::KeyTable t;
  std::string error;
  if (!auth::KeyTable::build(cfg, &t, &error)) std::abort();
  return t;
}

void BM_ExtractCredential(benchmark::State& state) {
  for (auto _ : state) {
    auth::CredentialFields f;
    f.on_field("Host", "127.0.0.1:11435");
    f.on_field("Authorization", "Bearer tt-C06pu-LIty8k-Q9zvuK04H-9-cwzONaQu0g8Ia8kRm0");
    f.on_field("Content-Type", "application/json");
    benchmark::DoNotOptimize(auth::extract_credential(f));
  }
}
BENCHMARK(BM_ExtractCredential);

void BM_FindKey(benchmark::State& state) {
  const auth::KeyTable t = table_with(state.range(0));
  const std::string secret = "tt-secret-" + std::to_string(state.range(0) - 1);
  for (auto _ : state) benchmark::DoNotOptimize(t.find(secret));
}
BENCHMARK(BM_FindKey)->Arg(1)->Arg(16)->Arg(256)->Arg(1024);

void BM_ModelAllowed(benchmark::State& state) {
  const auth::KeyTable t = table_with(1);
  for (auto _ : state) benchmark::DoNotOptimize(t.model_allowed(0, "qwen2.5:7b-instruct"));
}
BENCHMARK(BM_ModelAllowed);

std::unique_ptr<auth::KeyWindow> shared_window;

void BM_TryAdmitAndCharge(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_window = std::make_unique<auth::KeyWindow>(table_with(1).slot_limits());
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(shared_window->try_admit(0, now_s));
    shared_window->charge(0, 300, now_s);
  }
}
BENCHMARK(BM_TryAdmitAndCharge)->Threads(1)->Threads(8)->UseRealTime();

class NumberLabels final : public ledger::LedgerLabels {
 public:
  std::string_view key_name(std::uint32_t) const override { return "k0"; }
  std::string_view model_name(std::uint32_t) const override { return "llama3"; }
  std::string_view backend_name(std::uint32_t) const override { return "gpu0"; }
};

void BM_LedgerRecord(benchmark::State& state) {
  char dir[] = "/tmp/tokentap-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    state.SkipWithError("mkdtemp");
    return;
  }
  const NumberLabels labels;
  std::string error;
  auto l = ledger::Ledger::open(dir, 1, &labels, &error);
  if (!l) {
    state.SkipWithError(error.c_str());
    return;
  }
  ledger::UsageRecord r;
  r.unix_s = now_s;
  r.prompt_tokens = 100;
  r.completion_tokens = 200;
  // Steady state: the writer drains well before a queue fills. Every half queue the clock stops
  // while a flush empties it, so what is timed is the push, never the full-queue path.
  std::uint64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l->record(0, r));
    if (++n % (ledger::queue_records_max / 2) == 0) {
      state.PauseTiming();
      if (!l->flush(&error)) state.SkipWithError(error.c_str());
      state.ResumeTiming();
    }
  }
  state.counters["dropped"] = static_cast<double>(l->stats().dropped);
  l.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
BENCHMARK(BM_LedgerRecord);

}  // namespace
}  // namespace tokentap
