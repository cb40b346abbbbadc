// Conn answers for the model-management routes (see conn.h), as Ollama's PullHandler,
// DeleteHandler and CopyHandler write them (server/routes.go; wire-format.md §6):
//  - POST /api/pull: a stream of api.ProgressResponse lines (application/x-ndjson, one chunk per
//    line) ending in `success`, which installs the model; Options::pull_fail ends it with an
//    error line instead. stream:false: waitForStream's single object, `application/json`
//    without charset (it sets Content-Type before c.JSON): {"status":"success"}, or the error as
//    a 500. Options::pull_delay_ms waits before every line.
//  - DELETE /api/delete: an empty 200 (the handler writes nothing), or 404
//    {"error":"model 'x' not found"}.
//  - POST /api/copy: an empty 200 that installs the destination, or 404
//    {"error":"model \"x\" not found"} (Go's %q of the source).
// Body errors come first, as c.AbortWithStatusJSON 400s. Model names are the request's raw JSON
// string content (escapes kept), so they go back into JSON as they came.
#include <algorithm>
#include <string>

#include "conn.h"
#include "render.h"
#include "worker.h"

namespace tokentap::fake {
namespace {

constexpr std::string_view json_utf8 = "application/json; charset=utf-8";
constexpr std::string_view json_plain = "application/json";  // waitForStream

HandlerHeaders typed(std::string_view content_type) {
  HandlerHeaders h;
  h.content_type = content_type;
  return h;
}

}  // namespace

void Conn::reply_admin_error(Worker& w, int status, std::string_view message) {
  ByteBuf& s = w.scratch();
  s.clear();
  s.append(R"({"error":")");
  s.append(message);
  s.append("\"}");
  reply_single(w, status, typed(json_utf8), s.view(), req_.controls.delay_ms);
}

// ShouldBindJSON: no body is io.EOF, anything else that is not one object a decode error.
bool Conn::admin_fields(Worker& w, RequestFields* fields) {
  if (body_total_ == 0) {
    reply_admin_error(w, 400, "missing request body");
    return false;
  }
  if (body_overflow_ || !scan_request_json(body_.view(), fields)) {
    reply_admin_error(w, 400, "invalid request body");
    return false;
  }
  return true;
}

void Conn::respond_pull(Worker& w) {
  WorkerStats::add(w.stats().pull_requests, 1);
  RequestFields fields;
  if (!admin_fields(w, &fields)) return;
  model_.assign(fields.model.empty() ? fields.name : fields.model);  // cmp.Or(Model, Name)
  if (model_.empty()) {
    reply_admin_error(w, 400, "invalid model name");  // errtypes.InvalidModelNameErrMsg
    return;
  }
  Instance& in = w.instance();
  const bool fail = in.pull_fail.load(std::memory_order_relaxed);
  const std::uint32_t delay =
      std::max(req_.controls.delay_ms, in.pull_delay_ms.load(std::memory_order_relaxed));
  if (fields.stream == 0) {
    ByteBuf& s = w.scratch();
    s.clear();
    if (fail) {
      s.append(R"({"error":")");
      s.append(pull_fail_message);
      s.append("\"}");
    } else {
      in.add_model(model_);
      s.append(R"({"status":"success"})");
    }
    reply_single(w, fail ? 500 : 200, typed(json_plain), s.view(), delay);
    return;
  }
  stamp_ = w.clock().stamp();
  plan_ = Plan{};
  plan_.endpoint = Endpoint::pull;
  plan_.stream = true;
  plan_.model = model_;
  plan_.stamp = &stamp_;
  plan_.pull_fail = fail;
  req_.controls.delay_ms = delay;  // before every line, the first included
  start_stream(w);
}

void Conn::respond_delete(Worker& w) {
  WorkerStats::add(w.stats().delete_requests, 1);
  RequestFields fields;
  if (!admin_fields(w, &fields)) return;
  const std::string name(fields.model.empty() ? fields.name : fields.model);
  if (name.empty()) {
    reply_admin_error(w, 400, R"(name \"\" is invalid)");
    return;
  }
  if (!w.instance().remove_model(name)) {
    reply_admin_error(w, 404, "model '" + name + "' not found");
    return;
  }
  reply_single(w, 200, {}, {}, req_.controls.delay_ms);
}

void Conn::respond_copy(Worker& w) {
  WorkerStats::add(w.stats().copy_requests, 1);
  RequestFields fields;
  if (!admin_fields(w, &fields)) return;
  if (fields.source.empty() || fields.destination.empty()) {
    reply_admin_error(w, 400, fields.source.empty() ? R"(source \"\" is invalid)"
                                                    : R"(destination \"\" is invalid)");
    return;
  }
  Instance& in = w.instance();
  if (!in.load_catalog()->listed(fields.source)) {
    reply_admin_error(w, 404, "model \\\"" + std::string(fields.source) + "\\\" not found");
    return;
  }
  in.add_model(fields.destination);
  reply_single(w, 200, {}, {}, req_.controls.delay_ms);
}

}  // namespace tokentap::fake
