// key_state: the joints between the auth layer, the ledger and the obs model table that only the
// app layer may make (auth and ledger know nothing of each other): the ledger's names for a
// record's ids, and the day windows seeded from the ledger at start, so tokens_per_day survives
// a restart.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tokentap/auth/key_table.h"
#include "tokentap/auth/key_window.h"
#include "tokentap/base/config.h"
#include "tokentap/ledger/ledger.h"
#include "tokentap/ledger/ledger_store.h"
#include "tokentap/obs/model_table.h"

namespace tokentap {

// LedgerLabels over the key table (KeyId → name, "anonymous" included), the model table
// (ModelId → label value) and the configured backends (index → name). All three outlive the
// Ledger: they live as long as the Server.
class KeyLedgerLabels final : public ledger::LedgerLabels {
 public:
  KeyLedgerLabels(const auth::KeyTable& keys, const ModelTable& models, const Config& cfg)
      : keys_(keys), models_(models), cfg_(cfg) {}
  [[nodiscard]] std::string_view key_name(std::uint32_t key) const override;
  [[nodiscard]] std::string_view model_name(std::uint32_t model) const override;
  [[nodiscard]] std::string_view backend_name(std::uint32_t backend) const override;

 private:
  const auth::KeyTable& keys_;
  const ModelTable& models_;
  const Config& cfg_;
};

// Adds each configured key's tokens of the day holding `unix_s` to its tokens_per_day window;
// names the ledger has but the config no longer does are skipped.
void seed_day_windows(std::span<const ledger::KeyDayTokens> day, const auth::KeyTable& keys,
                      auth::KeyWindow* windows, std::uint64_t unix_s);

// The same from DIR/usage.sqlite3 (call it after Ledger::open, before the shards start). A
// state dir without a ledger yet (the first start) seeds nothing; a ledger that cannot be read
// is an error.
[[nodiscard]] bool seed_day_windows(const std::string& state_dir, const auth::KeyTable& keys,
                                    auth::KeyWindow* windows, std::uint64_t unix_s,
                                    std::string* error);

}  // namespace tokentap
