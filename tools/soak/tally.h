// Tally: what the client saw, per template and in total. Unexpected outcomes keep their reason
// (a count per reason) and the first few with details, for the report. Only unexpected outcomes
// allocate (a reason string); the common paths are counter increments.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tokentap::soak {

struct Template;

enum class Outcome : std::uint8_t {
  completed,       // answer equal to the reference
  upstream_cut,    // expected truncation (X-Fake-Abort-After): prefix, then close
  client_aborted,  // we closed after the first body bytes, as planned
  unexpected,      // anything else: counted, must stay 0
};

struct TallyRow {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;
  std::uint64_t upstream_cut = 0;
  std::uint64_t client_aborted = 0;
  std::uint64_t unexpected = 0;

  // Requests tokentap should have counted: every one that reached an end.
  [[nodiscard]] std::uint64_t finished() const {
    return completed + upstream_cut + client_aborted;
  }
};

class Tally {
 public:
  explicit Tally(std::size_t templates) : rows_(templates) {}

  void started(const Template& t);
  void finished(const Template& t, Outcome o);
  // An unexpected outcome; t is null for connection-level trouble (connect, idle close).
  void unexpected(const Template* t, std::string_view reason, std::string detail);

  [[nodiscard]] const TallyRow& row(std::size_t index) const { return rows_[index]; }
  [[nodiscard]] const TallyRow& total() const { return total_; }
  [[nodiscard]] std::uint64_t unexpected_total() const { return unexpected_total_; }
  [[nodiscard]] const std::map<std::string, std::uint64_t>& reasons() const { return reasons_; }
  [[nodiscard]] const std::vector<std::string>& examples() const { return examples_; }

 private:
  static constexpr std::size_t examples_max = 20;

  std::vector<TallyRow> rows_;
  TallyRow total_;
  std::uint64_t unexpected_total_ = 0;  // includes connection-level ones (no template)
  std::map<std::string, std::uint64_t> reasons_;
  std::vector<std::string> examples_;
};

}  // namespace tokentap::soak
