// Catalog: the soak's traffic mix. Every request the client sends is one of a fixed set of
// templates whose bytes are built once at start-up (no per-request formatting), and every
// template carries the answer it must get.
//
// How answers are checked. The fake upstream is deterministic: identical requests get identical
// bytes. Before tokentap starts, each template's reference request (the same method, path, body
// and X-Fake-* controls, minus X-Fake-Delay-Ms and X-Fake-Abort-After, which change timing and
// truncation but not the bytes) is sent straight to the fake, and the status and de-chunked body
// are kept. Through tokentap, a complete answer must have that status and exactly that body:
// since tokentap forwards bodies byte for byte, and removes again the usage it injected into
// OpenAI streams, any difference is a proxy bug. A template marked `upstream_cut`
// (X-Fake-Abort-After) must instead end early: head and a strict prefix of the body, then the
// connection closed. References are checked once: no "usage" in the bodies of OpenAI streams
// that did not ask for it, the /fake/blob pattern, the upload's byte count and checksum.
//
// Three groups: `fast` (weighted mix, back-to-back on keep-alive connections), `slow` (long
// native, OpenAI and Anthropic streams, 3 to ~35 s, several delay variants each) and `burst`
// (the phase-1 stream: 20 tokens, 500-1000 ms apart).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clock.h"

namespace tokentap::soak {

constexpr std::size_t blob_bytes = 1024 * 1024;      // upload and download size
constexpr std::uint64_t fast_deadline_ms = 60'000;   // a fast request, even on a starved box
constexpr std::uint64_t slow_grace_ms = 30'000;      // beyond a stream's nominal length

enum class Expect : std::uint8_t {
  complete,      // status and body equal to the reference
  upstream_cut,  // the fake resets mid-stream: a strict prefix of the body, then close
};

struct Template {
  std::uint32_t index = 0;  // position in Catalog::all()
  std::string name;
  std::vector<std::string> requests;      // head + body as sent through tokentap, per variant
  std::vector<std::uint32_t> delays_ms;   // X-Fake-Delay-Ms of each variant (0: none)
  std::string reference_request;          // sent straight to the fake
  bool upload = false;                    // the 1 MiB upload body follows the head
  int status = 200;
  Expect expect = Expect::complete;
  bool forbid_usage = false;  // an OpenAI stream without include_usage
  bool blob_pattern = false;  // GET /fake/blob
  std::uint32_t weight = 0;   // in the fast mix
  std::uint32_t tokens = 0;
  std::string reference_body;  // filled by fetch_references()

  // How long a request of this variant may take before it counts as stuck.
  [[nodiscard]] std::uint64_t deadline_ms(std::uint32_t variant) const;
};

class Catalog {
 public:
  Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // Fetches and checks every reference answer straight from the fake on fake_port.
  [[nodiscard]] bool fetch_references(std::uint16_t fake_port, std::string* error);

  [[nodiscard]] const Template& pick_fast(Rng& rng) const;
  [[nodiscard]] const Template& pick_slow(Rng& rng) const;
  [[nodiscard]] const std::vector<const Template*>& fast() const { return fast_; }
  [[nodiscard]] const std::vector<const Template*>& slow() const { return slow_; }
  [[nodiscard]] const Template& burst() const { return *burst_; }
  [[nodiscard]] const Template& warm_big() const { return *warm_big_; }
  [[nodiscard]] const std::vector<Template>& all() const { return all_; }

  [[nodiscard]] std::string_view upload_body() const { return upload_body_; }
  [[nodiscard]] std::uint64_t upload_checksum() const { return upload_checksum_; }

 private:
  std::vector<Template> all_;  // never resized after the constructor: pointers stay valid
  std::vector<const Template*> fast_;
  std::vector<const Template*> slow_;
  const Template* burst_ = nullptr;
  const Template* warm_big_ = nullptr;
  std::uint32_t fast_weight_total_ = 0;
  std::string upload_body_;
  std::uint64_t upload_checksum_ = 0;
};

}  // namespace tokentap::soak
