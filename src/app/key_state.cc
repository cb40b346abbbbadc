// key_state: KeyLedgerLabels and the start-up seed of the tokens_per_day windows.
#include "tokentap/app/key_state.h"

#include <sys/stat.h>

#include "tokentap/ledger/usage_time.h"

namespace tokentap {

std::string_view KeyLedgerLabels::key_name(std::uint32_t key) const {
  return key < keys_.slot_count() ? keys_.name(key) : std::string_view("unknown");
}

std::string_view KeyLedgerLabels::model_name(std::uint32_t model) const {
  return model < models_.id_count() ? models_.name(model) : model_unknown_name;
}

std::string_view KeyLedgerLabels::backend_name(std::uint32_t backend) const {
  return backend < cfg_.backends.size() ? std::string_view(cfg_.backends[backend].name)
                                        : std::string_view("unknown");
}

void seed_day_windows(std::span<const ledger::KeyDayTokens> day, const auth::KeyTable& keys,
                      auth::KeyWindow* windows, std::uint64_t unix_s) {
  for (const ledger::KeyDayTokens& d : day) {
    if (const std::optional<auth::KeyId> id = keys.id_of(d.key)) {
      windows->seed_day(*id, d.tokens, unix_s);
    }
  }
}

bool seed_day_windows(const std::string& state_dir, const auth::KeyTable& keys,
                      auth::KeyWindow* windows, std::uint64_t unix_s, std::string* error) {
  const std::string path = state_dir + "/" + std::string(ledger::ledger_file_name);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return true;  // no ledger yet: nothing used today
  auto store = ledger::LedgerStore::open(state_dir, ledger::LedgerStore::Mode::read, error);
  std::vector<ledger::KeyDayTokens> day;
  const std::int64_t start = ledger::day_start(static_cast<std::int64_t>(unix_s));
  if (!store || !store->day_tokens(start, &day, error)) return false;
  seed_day_windows(day, keys, windows, unix_s);
  return true;
}

}  // namespace tokentap
