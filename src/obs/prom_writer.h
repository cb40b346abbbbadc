// prom_writer: the pieces of the text exposition that prom_text.cc and prom_backend.cc share:
// number and label formatting, and FamilyWriter, which writes a family's `# HELP`/`# TYPE`
// once, before its first series, so a family with no series leaves no trace.
// Private to src/obs (the renderer's two files); not part of the obs API.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "tokentap/obs/prom_text.h"

namespace tokentap::prom_detail {

struct Family {
  std::string_view name;
  std::string_view type;
  std::string_view help;
};

inline void append_u64(std::string& out, std::uint64_t v) {
  const fmt::format_int text(v);
  out.append(text.data(), text.size());
}

// Shortest text that reads back as the same double; Prometheus spells infinities +Inf/-Inf.
inline void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

inline void append_label(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ',';
  out += key;
  out += "=\"";
  append_label_value(out, value);
  out += '"';
}

// Writes a family's HELP and TYPE the first time one of its series is written.
class FamilyWriter {
 public:
  FamilyWriter(std::string& out, const Family& family) : out_(out), family_(family) {}

  // Starts `name{labels} ` (the value follows).
  void sample(std::string_view suffix, std::string_view labels) {
    header();
    out_ += family_.name;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
  }
  void u64(std::string_view labels, std::uint64_t v) {
    sample({}, labels);
    append_u64(out_, v);
    out_ += '\n';
  }
  void f64(std::string_view labels, double v) {
    sample({}, labels);
    append_double(out_, v);
    out_ += '\n';
  }
  template <std::size_t B>
  void histogram(std::string_view labels, const PromRenderer::MergedHistogram<B>& h,
                 const std::vector<std::string>& le);

 private:
  void header() {
    if (started_) return;
    started_ = true;
    fmt::format_to(std::back_inserter(out_), "# HELP {0} {1}\n# TYPE {0} {2}\n", family_.name,
                   family_.help, family_.type);
  }

  std::string& out_;
  const Family& family_;
  bool started_ = false;
};

template <std::size_t B>
void FamilyWriter::histogram(std::string_view labels, const PromRenderer::MergedHistogram<B>& h,
                             const std::vector<std::string>& le) {
  header();
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    out_ += family_.name;
    out_ += "_bucket{";
    out_ += labels;
    if (!labels.empty()) out_ += ',';
    out_ += "le=\"";
    out_ += le[i];
    out_ += "\"} ";
    append_u64(out_, cumulative);
    out_ += '\n';
  }
  sample("_sum", labels);
  append_double(out_, h.sum);
  out_ += '\n';
  sample("_count", labels);  // from the buckets: always equal to le="+Inf"
  append_u64(out_, cumulative);
  out_ += '\n';
}

template <std::size_t B>
std::uint64_t count_of(const PromRenderer::MergedHistogram<B>& h) {
  return std::accumulate(h.buckets.begin(), h.buckets.end(), std::uint64_t{0});
}

template <std::size_t B>
void add(PromRenderer::MergedHistogram<B>& m, const Histogram<B>& h) {
  for (std::size_t i = 0; i < m.buckets.size(); ++i) {
    m.buckets[i] += h.buckets[i].load(std::memory_order_relaxed);
  }
  m.sum += h.sum.load(std::memory_order_relaxed);
}

inline std::uint64_t load(const Counter& c) { return c.load(std::memory_order_relaxed); }

}  // namespace tokentap::prom_detail
