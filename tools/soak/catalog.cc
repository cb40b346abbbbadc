// Catalog (see catalog.h): the request templates and their reference answers.
#include "catalog.h"

#include <fmt/format.h>

#include "blocking_http.h"
#include "byte_buf.h"  // fake::fnv1a64, the checksum the fake reports for uploads

namespace tokentap::soak {
namespace {

// Prompts and messages. Bodies are valid JSON for the fake's skimmer and tokentap's probe.
constexpr std::string_view user_msg = R"([{"role":"user","content":"Why is the sky blue?"}])";

struct Spec {
  std::string_view name;
  std::string_view method;
  std::string_view path;
  std::string body;
  std::string_view controls;  // X-Fake-* headers, CRLF-terminated, sent both ways
  std::string_view cut;       // headers only sent through tokentap (X-Fake-Abort-After)
  int status;
  Expect expect;
  bool forbid_usage;
  std::uint32_t weight;
  std::uint32_t tokens;
};

std::string gen_body(bool stream_field, bool stream) {
  std::string b = R"({"model":"llama3.2","prompt":"Why is the sky blue?")";
  if (stream_field) b += stream ? R"(,"stream":true)" : R"(,"stream":false)";
  return b + "}";
}

std::string chat_body(std::string_view model, std::string_view tail) {
  return fmt::format(R"({{"model":"{}","messages":{}{}}})", model, user_msg, tail);
}

std::string completion_body(std::string_view tail) {
  return fmt::format(R"({{"model":"mistral:7b","prompt":"Once upon a time"{}}})", tail);
}

std::string messages_body() {
  return fmt::format(R"({{"model":"llama3.2","max_tokens":256,"messages":{},"stream":true}})",
                     user_msg);
}

constexpr std::string_view usage_tail = R"(,"stream":true,"stream_options":{"include_usage":true})";

std::vector<Spec> fast_specs() {
  const Expect ok = Expect::complete;
  const Expect cut = Expect::upstream_cut;
  return {
      {"generate stream", "POST", "/api/generate", gen_body(false, true),
       "X-Fake-Tokens: 6\r\n", {}, 200, ok, false, 8, 6},
      {"generate single", "POST", "/api/generate", gen_body(true, false),
       "X-Fake-Tokens: 6\r\n", {}, 200, ok, false, 6, 6},
      {"chat stream (think)", "POST", "/api/chat", chat_body("qwen3:8b", ""),
       "X-Fake-Tokens: 8\r\nX-Fake-Think: 1\r\n", {}, 200, ok, false, 8, 8},
      {"chat single (tools)", "POST", "/api/chat", chat_body("qwen3:8b", R"(,"stream":false)"),
       "X-Fake-Tokens: 4\r\nX-Fake-Tools: 1\r\n", {}, 200, ok, false, 5, 4},
      {"v1 chat stream +include_usage", "POST", "/v1/chat/completions",
       chat_body("gemma3:4b", usage_tail), "X-Fake-Tokens: 7\r\n", {}, 200, ok, false, 7, 7},
      {"v1 chat stream (usage injected)", "POST", "/v1/chat/completions",
       chat_body("gemma3:4b", R"(,"stream":true)"), "X-Fake-Tokens: 7\r\n", {}, 200, ok, true, 8,
       7},
      {"v1 chat single", "POST", "/v1/chat/completions", chat_body("gemma3:4b", ""),
       "X-Fake-Tokens: 5\r\n", {}, 200, ok, false, 5, 5},
      {"v1 completions stream (usage injected)", "POST", "/v1/completions",
       completion_body(R"(,"stream":true)"), "X-Fake-Tokens: 6\r\n", {}, 200, ok, true, 6, 6},
      {"v1 completions stream +include_usage", "POST", "/v1/completions",
       completion_body(usage_tail), "X-Fake-Tokens: 6\r\n", {}, 200, ok, false, 4, 6},
      {"v1 responses stream (think)", "POST", "/v1/responses",
       R"({"model":"qwen3:8b","input":"Why is the sky blue?","stream":true})",
       "X-Fake-Tokens: 6\r\nX-Fake-Think: 1\r\n", {}, 200, ok, false, 5, 6},
      {"v1 messages stream (tools)", "POST", "/v1/messages", messages_body(),
       "X-Fake-Tokens: 6\r\nX-Fake-Tools: 1\r\n", {}, 200, ok, false, 6, 6},
      {"embed", "POST", "/api/embed", R"({"model":"all-minilm","input":"hello world"})", {}, {},
       200, ok, false, 4, 0},
      {"GET /api/tags", "GET", "/api/tags", {}, {}, {}, 200, ok, false, 3, 0},
      {"unknown path (404)", "GET", "/api/nope", {}, {}, {}, 404, ok, false, 2, 0},
      {"generate error before (500)", "POST", "/api/generate", gen_body(false, true),
       "X-Fake-Error: before\r\n", {}, 500, ok, false, 2, 5},
      {"v1 chat stream error before (500)", "POST", "/v1/chat/completions",
       chat_body("gemma3:4b", R"(,"stream":true)"), "X-Fake-Error: before\r\n", {}, 500, ok,
       false, 1, 5},
      {"chat error midstream", "POST", "/api/chat", chat_body("qwen3:8b", ""),
       "X-Fake-Tokens: 6\r\nX-Fake-Error: midstream\r\n", {}, 200, ok, false, 2, 6},
      {"v1 chat error midstream (usage injected)", "POST", "/v1/chat/completions",
       chat_body("gemma3:4b", R"(,"stream":true)"),
       "X-Fake-Tokens: 6\r\nX-Fake-Error: midstream\r\n",
       {}, 200, ok, true, 2, 6},
      {"generate upstream reset", "POST", "/api/generate", gen_body(false, true),
       "X-Fake-Tokens: 6\r\n", "X-Fake-Abort-After: 2\r\n", 200, cut, false, 2, 6},
      {"v1 chat upstream reset (usage injected)", "POST", "/v1/chat/completions",
       chat_body("gemma3:4b", R"(,"stream":true)"), "X-Fake-Tokens: 6\r\n",
       "X-Fake-Abort-After: 3\r\n", 200, cut, true, 1, 6},
      {"blob upload 1 MiB", "POST",
       "/api/blobs/sha256:4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899", {},
       {}, {}, 201, ok, false, 1, 0},
      {"blob download 1 MiB", "GET", "/fake/blob?size=1048576", {}, {}, {}, 200, ok, false, 1, 0},
  };
}

// Slow streams: the four metered stream dialects at four lengths; the same (endpoint, model)
// pairs as the fast mix, so the warm-up creates every metrics series they touch.
struct SlowKind {
  std::string_view name;
  std::string_view path;
  std::string body;
  bool forbid_usage;
};

std::vector<SlowKind> slow_kinds() {
  return {
      {"generate", "/api/generate", gen_body(false, true), false},
      {"chat", "/api/chat", chat_body("qwen3:8b", ""), false},
      {"v1 chat (usage injected)", "/v1/chat/completions",
       chat_body("gemma3:4b", R"(,"stream":true)"), true},
      {"v1 messages", "/v1/messages", messages_body(), false},
  };
}

constexpr std::uint32_t slow_tokens[] = {4, 10, 20, 30};
const std::vector<std::uint32_t> slow_delays_ms = {400, 600, 800, 1000};
constexpr std::uint32_t burst_tokens = 20;
const std::vector<std::uint32_t> burst_delays_ms = {500, 625, 750, 875, 1000};
constexpr std::size_t warm_prompt_bytes = 256 * 1024;
// Upper bound on a stream's HTTP chunks beyond its tokens (start/stop events of the dialects).
constexpr std::uint64_t stream_extra_chunks = 10;

std::string head(std::string_view method, std::string_view path, std::size_t body_bytes,
                 bool json, std::string_view headers) {
  std::string h = fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
  if (method == "POST") {
    h += json ? "Content-Type: application/json\r\n" : "Content-Type: application/octet-stream\r\n";
    h += fmt::format("Content-Length: {}\r\n", body_bytes);
  }
  h += headers;
  h += "\r\n";
  return h;
}

}  // namespace

std::uint64_t Template::deadline_ms(std::uint32_t variant) const {
  const std::uint64_t delay = delays_ms.empty() ? 0 : delays_ms[variant];
  if (delay == 0) return fast_deadline_ms;
  return (tokens + stream_extra_chunks) * delay + slow_grace_ms;
}

Catalog::Catalog() {
  upload_body_.resize(blob_bytes);
  for (std::size_t i = 0; i < blob_bytes; ++i) {
    upload_body_[i] = static_cast<char>((i * 131 + 17) & 0xff);
  }
  upload_checksum_ = fake::fnv1a64(fake::fnv1a64_init, upload_body_);

  const std::vector<Spec> specs = fast_specs();
  const std::vector<SlowKind> kinds = slow_kinds();
  all_.reserve(specs.size() + kinds.size() * std::size(slow_tokens) + 2);
  for (const Spec& s : specs) {
    Template t;
    t.index = static_cast<std::uint32_t>(all_.size());
    t.name = std::string(s.name);
    t.upload = s.name.starts_with("blob upload");
    const std::size_t body_bytes = t.upload ? blob_bytes : s.body.size();
    const std::string_view body = t.upload ? std::string_view{} : std::string_view{s.body};
    const std::string sent_headers = std::string(s.controls) + std::string(s.cut);
    t.requests.push_back(head(s.method, s.path, body_bytes, !t.upload, sent_headers) +
                         std::string(body));
    t.delays_ms.push_back(0);
    t.reference_request = head(s.method, s.path, body_bytes, !t.upload, s.controls) +
                          std::string(body);
    t.status = s.status;
    t.expect = s.expect;
    t.forbid_usage = s.forbid_usage;
    t.blob_pattern = s.path.starts_with("/fake/blob");
    t.weight = s.weight;
    t.tokens = s.tokens;
    all_.push_back(std::move(t));
  }
  auto add_stream = [&](std::string name, const SlowKind& k, std::uint32_t tokens,
                        const std::vector<std::uint32_t>& delays) {
    Template t;
    t.index = static_cast<std::uint32_t>(all_.size());
    t.name = std::move(name);
    const std::string controls = fmt::format("X-Fake-Tokens: {}\r\n", tokens);
    for (const std::uint32_t d : delays) {
      const std::string h = controls + fmt::format("X-Fake-Delay-Ms: {}\r\n", d);
      t.requests.push_back(head("POST", k.path, k.body.size(), true, h) + k.body);
      t.delays_ms.push_back(d);
    }
    t.reference_request = head("POST", k.path, k.body.size(), true, controls) + k.body;
    t.forbid_usage = k.forbid_usage;
    t.tokens = tokens;
    all_.push_back(std::move(t));
  };
  for (const SlowKind& k : kinds) {
    for (const std::uint32_t tokens : slow_tokens) {
      add_stream(fmt::format("slow {} stream, {} tokens", k.name, tokens), k, tokens,
                 slow_delays_ms);
    }
  }
  add_stream(fmt::format("burst generate stream, {} tokens", burst_tokens), kinds[0], burst_tokens,
             burst_delays_ms);
  for (const Template& t : all_) {
    if (t.weight > 0) {
      fast_.push_back(&t);
      fast_weight_total_ += t.weight;
    } else if (t.name.starts_with("slow")) {
      slow_.push_back(&t);
    }
  }
  burst_ = &all_.back();
  {
    // Warm-up only: a 256 KiB prompt arrives in full 16 KiB receive buffers, so every page of
    // tokentap's provided buffers is touched before the RSS baseline (small requests touch
    // only the first page of each buffer).
    Template t;
    t.index = static_cast<std::uint32_t>(all_.size());
    t.name = "warm-up generate single, 256 KiB prompt";
    const std::string body = R"({"model":"llama3.2","prompt":")" +
                             std::string(warm_prompt_bytes, 'a') + R"(","stream":false})";
    const std::string controls = "X-Fake-Tokens: 1\r\n";
    t.requests.push_back(head("POST", "/api/generate", body.size(), true, controls) + body);
    t.delays_ms.push_back(0);
    t.reference_request = t.requests.back();
    t.tokens = 1;
    all_.push_back(std::move(t));
    warm_big_ = &all_.back();
  }
}

const Template& Catalog::pick_fast(Rng& rng) const {
  std::uint32_t r = rng.below(fast_weight_total_);
  for (const Template* t : fast_) {
    if (r < t->weight) return *t;
    r -= t->weight;
  }
  return *fast_.back();
}

const Template& Catalog::pick_slow(Rng& rng) const {
  return *slow_[rng.below(static_cast<std::uint32_t>(slow_.size()))];
}

bool Catalog::fetch_references(std::uint16_t fake_port, std::string* error) {
  for (Template& t : all_) {
    HttpResult r;
    const std::string_view body = t.upload ? std::string_view{upload_body_} : std::string_view{};
    if (!http_exchange(fake_port, t.reference_request, body, &r, error)) {
      *error = fmt::format("reference for '{}': {}", t.name, *error);
      return false;
    }
    std::string problem;
    if (r.status != t.status) problem = fmt::format("status {} (want {})", r.status, t.status);
    if (!r.complete) problem = "incomplete";
    if (t.forbid_usage && r.body.find("\"usage\"") != std::string::npos) {
      problem = "has a usage member although the request did not ask for one";
    }
    if (t.blob_pattern) {
      bool pattern = r.body.size() == blob_bytes;
      for (std::size_t i = 0; pattern && i < r.body.size(); ++i) {
        pattern = static_cast<unsigned char>(r.body[i]) == ((i * 31 + 7) & 0xff);
      }
      if (!pattern) problem = "not the /fake/blob byte pattern";
    }
    if (t.upload && (!r.has_fake_checksum || r.fake_checksum != upload_checksum_ ||
                     r.fake_bytes != blob_bytes)) {
      problem = "upload byte count or checksum differs";
    }
    if (t.expect == Expect::upstream_cut && r.body.empty()) problem = "empty body";
    if (!problem.empty()) {
      *error = fmt::format("reference for '{}': {}", t.name, problem);
      return false;
    }
    t.reference_body = std::move(r.body);
  }
  return true;
}

}  // namespace tokentap::soak
