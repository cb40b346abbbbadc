// /api/pull progress lines as PullModel sends them (server/images.go, server/download.go;
// wire-format.md §6): api.ProgressResponse marshalled by streamResponse, one line per flush,
// `digest`, `total` and `completed` left out when empty or 0 (omitempty). A layer's status is
// "pulling " + digest[7:19]. Digests and sizes derive from the model's name, so one model pulls
// the same way on every instance.
#include <cstdio>
#include <string>

#include "instance.h"
#include "render.h"

namespace tokentap::fake::render_detail {
namespace {

constexpr std::string_view sha256_prefix = "sha256:";
constexpr std::size_t digest_hex_chars = 64;
constexpr std::size_t status_digest_chars = 12;  // digest[7:19]
// Layer sizes: the weights (about a 7B Q4 model), the template, the params.
constexpr std::uint64_t weights_bytes_base = 1'000'000'000;
constexpr std::uint64_t weights_bytes_spread = 4'000'000'000;
constexpr std::uint64_t template_bytes = 1'429;
constexpr std::uint64_t params_bytes = 485;

struct Layer {
  char hex[digest_hex_chars + 1] = {};
  std::uint64_t total = 0;
};

Layer layer_of(std::string_view model, std::uint32_t index) {
  const std::string key = normalize_model(model);
  Layer l;
  for (std::uint64_t part = 0; part < 4; ++part) {
    const std::uint64_t seed = (index + 1) * 16 + part;
    const std::uint64_t h = fnv1a64(fnv1a64_init ^ seed, key);
    std::snprintf(l.hex + part * 16, 17, "%016llx", static_cast<unsigned long long>(h));
  }
  const std::uint64_t h = fnv1a64(fnv1a64_init, key);
  l.total = index == 0 ? weights_bytes_base + h % weights_bytes_spread
            : index == 1 ? template_bytes
                         : params_bytes;
  return l;
}

void status_line(ByteBuf& out, std::string_view status) {
  out.append(R"({"status":")");
  out.append(status);
  out.append("\"}\n");
}

void layer_line(const Plan& plan, std::uint32_t piece, ByteBuf& out) {
  const Layer l = layer_of(plan.model, piece / pull_layer_updates);
  const std::uint32_t update = piece % pull_layer_updates;
  const std::uint64_t completed = l.total * update / (pull_layer_updates - 1);
  out.append(R"({"status":"pulling )");
  out.append(std::string_view(l.hex, status_digest_chars));
  out.append(R"(","digest":")");
  out.append(sha256_prefix);
  out.append(std::string_view(l.hex, digest_hex_chars));
  out.append(R"(","total":)");
  out.append_u64(l.total);
  if (completed > 0) {
    out.append(R"(,"completed":)");
    out.append_u64(completed);
  }
  out.append("}\n");
}

}  // namespace

void render_pull_event(const Plan& plan, const Script::Event& event, ByteBuf& out) {
  switch (event.ev) {
    case Ev::pl_manifest:
      status_line(out, "pulling manifest");
      return;
    case Ev::pl_layer:
      layer_line(plan, event.piece, out);
      return;
    case Ev::pl_verify:
      status_line(out, "verifying sha256 digest");
      return;
    case Ev::pl_write:
      status_line(out, "writing manifest");
      return;
    case Ev::pl_success:
      status_line(out, "success");
      return;
    case Ev::pl_error:
      out.append(R"({"error":")");
      out.append(pull_fail_message);
      out.append("\"}\n");
      return;
    default:
      return;
  }
}

}  // namespace tokentap::fake::render_detail
