// Tally (see tally.h).
#include "tally.h"

#include <cstdio>

#include <fmt/format.h>

#include "catalog.h"

namespace tokentap::soak {

void Tally::started(const Template& t) {
  ++rows_[t.index].started;
  ++total_.started;
}

void Tally::finished(const Template& t, Outcome o) {
  TallyRow& r = rows_[t.index];
  switch (o) {
    case Outcome::completed:
      ++r.completed;
      ++total_.completed;
      return;
    case Outcome::upstream_cut:
      ++r.upstream_cut;
      ++total_.upstream_cut;
      return;
    case Outcome::client_aborted:
      ++r.client_aborted;
      ++total_.client_aborted;
      return;
    case Outcome::unexpected:
      ++r.unexpected;
      ++total_.unexpected;
      return;
  }
}

void Tally::unexpected(const Template* t, std::string_view reason, std::string detail) {
  ++unexpected_total_;
  if (t != nullptr) finished(*t, Outcome::unexpected);
  const std::string key =
      t == nullptr ? fmt::format("connection: {}", reason) : fmt::format("{}: {}", t->name, reason);
  ++reasons_[key];
  if (examples_.size() < examples_max) {
    examples_.push_back(detail.empty() ? key : fmt::format("{} ({})", key, detail));
    std::fprintf(stderr, "soak: unexpected: %s\n", examples_.back().c_str());
  }
}

}  // namespace tokentap::soak
