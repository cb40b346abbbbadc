// Conn answers (see conn.h): the allowed-hosts check, the small fixed routes, blobs, echo, and
// the inference routes through Plan/Script/render. Every answer applies the X-Fake-* controls
// the same way: delay (hold), abort (RST after a prefix), close-after (FIN after the answer).
#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "conn.h"
#include "render.h"
#include "worker.h"

namespace tokentap::fake {
namespace {

constexpr std::string_view text_plain_utf8 = "text/plain; charset=utf-8";
constexpr std::string_view json_utf8 = "application/json; charset=utf-8";
constexpr std::string_view ollama_version_body = R"({"version":"0.33.0-rc2"})";
constexpr std::string_view health_fail_body = R"({"error":"fake health check failure"})";
// ErrMaxQueue (server/sched.go:88): two spaces after "again.".
constexpr std::string_view busy_message =
    "server busy, please try again.  maximum pending requests exceeded";

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Go's net.SplitHostPort, falling back to the whole value as Ollama does.
std::string_view host_part(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':') {
      return host.substr(1, close - 1);
    }
    return host;
  }
  const std::size_t colon = host.rfind(':');
  if (colon == std::string_view::npos || host.find(':') != colon) return host;
  return host.substr(0, colon);
}

bool allowed_ip(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    const std::uint32_t a = ntohl(v4.s_addr);
    return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 ||
           a == 0;  // loopback, 10/8, 172.16/12, 192.168/16, unspecified
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6)) return true;
    return (v6.s6_addr[0] & 0xfe) == 0xfc;  // fc00::/7
  }
  return false;
}

// Ollama's allowedHostsMiddleware (wire-format.md §1.6), minus the machine's own hostname and
// interface addresses, which would make answers depend on the machine.
bool allowed_host(std::string_view host_header) {
  std::string host(host_part(host_header));
  for (char& c : host) c = lower(c);
  if (host.empty() || host == "localhost") return true;
  if (ends_with(host, ".localhost") || ends_with(host, ".local") || ends_with(host, ".internal")) {
    return true;
  }
  return allowed_ip(host);
}

// JSON string escaping for arbitrary bytes (header values in /fake/echo).
void put_escaped(ByteBuf& out, std::string_view s) {
  out.append('"');
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.append('\\');
      out.append(c);
    } else if (u < 0x20 || c == '<' || c == '>' || c == '&') {
      constexpr char hex[] = "0123456789abcdef";
      out.append("\\u00");
      out.append(hex[u >> 4]);
      out.append(hex[u & 0xf]);
    } else {
      out.append(c);
    }
  }
  out.append('"');
}

std::uint64_t query_u64(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=') {
      std::uint64_t v = 0;
      for (const char c : item.substr(key.size() + 1)) {
        if (c < '0' || c > '9') return 0;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      return v;
    }
  }
  return 0;
}

std::string status_message(const Plan& plan) {
  switch (plan.status) {
    case 400:
      return "invalid request";
    case 404:
      return "model '" + std::string(plan.model) + "' not found";
    case 429:
    case 503:
      return std::string(busy_message);
    case 499:
      return "request canceled";
    default:
      return "fake status " + std::to_string(plan.status);
  }
}

bool generates(Endpoint e) {
  return e == Endpoint::generate || e == Endpoint::chat || e == Endpoint::v1_chat ||
         e == Endpoint::v1_completions || e == Endpoint::v1_responses || e == Endpoint::v1_messages;
}

HandlerHeaders typed(std::string_view content_type) {
  HandlerHeaders h;
  h.content_type = content_type;
  return h;
}

// Generate and chat (and the compatibility routes over them) look the model up first
// (server/routes.go:279-296, 2475-2492); the embedding routes fail in scheduleRunner
// (handleScheduleError, server/routes.go:3107-3120). `model` is raw JSON string content, so the
// quotes of Go's %q are written escaped.
std::string not_found_message(Endpoint e, std::string_view model) {
  if (e == Endpoint::embed || e == Endpoint::embeddings || e == Endpoint::v1_embeddings) {
    return "model \\\"" + std::string(model) + "\\\" not found, try pulling it first";
  }
  return "model '" + std::string(model) + "' not found";
}

// Anthropic and Responses streams keep their Cache-Control/Connection even on an error.
HandlerHeaders error_headers(const Plan& plan) {
  HandlerHeaders h = typed(error_content_type(plan));
  h.stream_headers = sets_stream_headers(plan);
  return h;
}

}  // namespace

void Conn::respond(Worker& w) {
  meta_ = ReplyMeta{.http10 = req_.http10(),
                    .head_method = req_.method == "HEAD",
                    .close = req_.connection_close || req_.http10()};
  after_ = meta_.close || req_.controls.close_after ? After::close : After::keep_alive;
  if (route_.endpoint != Endpoint::fake_blob) apply_close_mode(w);
  const std::uint64_t delay = req_.controls.delay_ms;
  if (w.host_check() && !allowed_host(req_.host)) {
    reply_single(w, 403, {}, {}, delay);  // AbortWithStatus: no body, no Content-Type
    return;
  }
  switch (route_.endpoint) {
    case Endpoint::root:
      reply_single(w, 200, typed(text_plain_utf8), "Ollama is running", delay);
      return;
    case Endpoint::version:
      respond_version(w);
      return;
    case Endpoint::tags:
      reply_single(w, 200, typed(json_utf8), w.instance().load_catalog()->tags_body, delay);
      return;
    case Endpoint::ps:
      reply_single(w, 200, typed(json_utf8), w.instance().load_catalog()->ps_body, delay);
      return;
    case Endpoint::v1_models:  // ListMiddleware: json.Encoder, application/json
      reply_single(w, 200, typed("application/json"), w.instance().load_catalog()->v1_models_body,
                   delay);
      return;
    case Endpoint::blob_upload:
      respond_blob_upload(w);
      return;
    case Endpoint::blob_head:
      reply_single(w, 200, {}, {}, delay);
      return;
    case Endpoint::fake_blob:
      respond_fake_blob(w);
      return;
    case Endpoint::fake_echo:
      respond_echo(w);
      return;
    case Endpoint::pull:
      respond_pull(w);
      return;
    case Endpoint::delete_model:
      respond_delete(w);
      return;
    case Endpoint::copy_model:
      respond_copy(w);
      return;
    case Endpoint::not_found:  // gin serveError: text/plain without charset
      reply_single(w, 404, typed("text/plain"), "404 page not found", delay);
      return;
    case Endpoint::method_not_allowed: {
      HandlerHeaders h = typed("text/plain");
      h.allow = route_.allow;
      reply_single(w, 405, h, "405 method not allowed", delay);
      return;
    }
    default:
      respond_inference(w);
      return;
  }
}

// X-Fake-Close, or the instance's close mode on inference routes, as abort controls.
void Conn::apply_close_mode(Worker& w) {
  CloseMode mode = req_.controls.close;
  if (mode == CloseMode::none && is_inference(route_.endpoint)) {
    mode = w.instance().close.load(std::memory_order_relaxed);
  }
  switch (mode) {
    case CloseMode::before_head:
      req_.controls.abort_after = 0;
      break;
    case CloseMode::after_head:
      req_.controls.abort_after = -1;
      head_only_ = true;
      break;
    case CloseMode::mid_body:
      if (req_.controls.abort_after < 1) req_.controls.abort_after = 1;
      break;
    case CloseMode::none:
      break;
  }
}

// GET|HEAD /api/version: the instance's health mode.
void Conn::respond_version(Worker& w) {
  WorkerStats::add(w.stats().health_checks, 1);
  const std::uint64_t delay = req_.controls.delay_ms;
  switch (w.instance().health.load(std::memory_order_relaxed)) {
    case Health::fail:
      reply_single(w, 500, typed(json_utf8), health_fail_body, delay);
      return;
    case Health::slow:
      reply_single(w, 200, typed(json_utf8), ollama_version_body,
                   std::max<std::uint64_t>(delay, w.instance().health_slow_ms));
      return;
    case Health::ok:
      reply_single(w, 200, typed(json_utf8), ollama_version_body, delay);
      return;
  }
}

// A model that is not installed (404), then a busy instance (503): answered with c.JSON before
// any generation, so a single write even for stream requests. True if answered.
bool Conn::refuse_inference(Worker& w) {
  int status = 0;
  std::string message;
  if (!w.instance().load_catalog()->installed(model_)) {
    status = 404;
    message = not_found_message(plan_.endpoint, model_);
    WorkerStats::add(w.stats().model_not_found_answers, 1);
  } else if (w.instance().busy.load(std::memory_order_relaxed)) {
    status = 503;
    message = busy_message;
    WorkerStats::add(w.stats().busy_answers, 1);
  } else {
    return false;
  }
  plan_.stream = false;
  ByteBuf& s = w.scratch();
  s.clear();
  render_error(plan_, status, message, s);
  reply_single(w, status, typed(body_content_type(plan_)), s.view(), req_.controls.delay_ms);
  return true;
}

void Conn::respond_inference(Worker& w) {
  WorkerStats::add(w.stats().inference_requests, 1);
  in_flight_ = &w.stats().inference_in_flight;
  in_flight_->fetch_add(1, std::memory_order_relaxed);
  RequestFields fields;
  const bool parsed = !body_overflow_ && scan_request_json(body_.view(), &fields);
  stamp_ = w.clock().stamp();
  model_.assign(fields.model);
  plan_ = build_plan(route_.endpoint, req_.controls, fields, body_total_, stamp_);
  plan_.model = model_;
  plan_.stamp = &stamp_;
  const std::uint64_t delay = req_.controls.delay_ms;
  ByteBuf& s = w.scratch();
  s.clear();
  if (!parsed || fields.model.empty()) {  // answered before any generation
    plan_.stream = false;
    const std::string_view message = body_total_ == 0 ? "missing request body"
                                     : !parsed        ? "invalid request body"
                                                      : "model is required";
    render_error(plan_, 400, message, s);
    reply_single(w, 400, typed(error_content_type(plan_)), s.view(), delay);
    return;
  }
  if (refuse_inference(w)) return;
  // A midstream error on a stream is part of the stream (Script); everything else fails first.
  if (plan_.error == FakeError::before || (plan_.error == FakeError::midstream && !plan_.stream)) {
    const bool before = plan_.error == FakeError::before;
    render_error(plan_, plan_.status, before ? runner_stopped_message : midstream_message, s);
    const HandlerHeaders h = error_headers(plan_);
    if (plan_.stream) {  // the streaming path writes and flushes the error itself: chunked
      reply_flushed(w, plan_.status, h, s.view(), delay);
    } else {
      reply_single(w, plan_.status, h, s.view(), delay);
    }
    return;
  }
  if (plan_.status >= 400) {  // X-Fake-Status on a non-stream request
    render_error(plan_, plan_.status, status_message(plan_), s);
    reply_single(w, plan_.status, typed(error_content_type(plan_)), s.view(), delay);
    return;
  }
  if (plan_.special != Special::none) {  // load/unload: one object whatever `stream` says
    (void)render_body(plan_, s);
    reply_single(w, 200, typed(json_utf8), s.view(), delay);
    return;
  }
  if (plan_.stream) {
    start_stream(w);
    return;
  }
  const Usage usage = render_body(plan_, s);
  if (req_.controls.abort_after < 0) {
    WorkerStats::add(w.stats().prompt_tokens_sent, usage.prompt);
    WorkerStats::add(w.stats().completion_tokens_sent, usage.completion);
  }
  // A non-stream answer takes as long as the stream would have: one delay per chunk.
  const std::uint64_t hold = generates(plan_.endpoint) ? delay * (plan_.tokens + 1) : delay;
  reply_single(w, plan_.status, typed(body_content_type(plan_)), s.view(), hold);
}

void Conn::respond_blob_upload(Worker& w) {
  w.note_blob_checksum(body_fnv_);
  HandlerHeaders h;
  h.fake_bytes = static_cast<std::int64_t>(body_total_);
  h.has_fake_checksum = true;
  h.fake_checksum = body_fnv_;
  reply_single(w, 201, h, {}, req_.controls.delay_ms);
}

// GET /fake/blob?size=N: Content-Length set by the handler, body streamed from the pattern.
// X-Fake-Abort-After: K sends only K body bytes, then resets the connection.
void Conn::respond_fake_blob(Worker& w) {
  const std::uint64_t size = query_u64(req_.query, "size");
  const CloseMode close = req_.controls.close;
  if (close == CloseMode::before_head) {
    after_ = After::reset;
    return;
  }
  HandlerHeaders h = typed("application/octet-stream");
  h.content_length = static_cast<std::int64_t>(size);
  write_head(out_, meta_, 200, h, Framing::content_length, size, w.clock().date());
  blob_left_ = meta_.head_method ? 0 : size;
  blob_pos_ = 0;
  std::int64_t abort_after = req_.controls.abort_after;
  if (close == CloseMode::after_head) abort_after = 0;
  if (close == CloseMode::mid_body) abort_after = static_cast<std::int64_t>(blob_left_ / 2);
  if (abort_after >= 0) {
    blob_left_ = std::min<std::uint64_t>(blob_left_, static_cast<std::uint64_t>(abort_after));
    after_ = After::reset;
  }
  if (req_.controls.delay_ms > 0) {
    held_ = true;
    arm_timer(w, req_.controls.delay_ms);
  }
}

// GET|POST|… /fake/echo: what arrived, as JSON, so tests see exactly what a proxy forwarded.
void Conn::respond_echo(Worker& w) {
  ByteBuf& s = w.scratch();
  s.clear();
  s.append(R"({"method":)");
  put_escaped(s, req_.method);
  s.append(R"(,"target":)");
  put_escaped(s, req_.target);
  s.append(req_.http10() ? R"(,"version":"HTTP/1.0","headers":[)"
                         : R"(,"version":"HTTP/1.1","headers":[)");
  bool first = true;
  for_each_header(req_.header_block, [&](std::string_view name, std::string_view value) {
    if (!first) s.append(',');
    first = false;
    s.append('[');
    put_escaped(s, name);
    s.append(',');
    put_escaped(s, value);
    s.append(']');
  });
  s.append(R"(],"body_bytes":)");
  s.append_u64(body_total_);
  s.append(R"(,"body_fnv1a64":")");
  s.append_hex(body_fnv_);
  s.append("\"}");
  reply_single(w, 200, typed("application/json"), s.view(), req_.controls.delay_ms);
}

void Conn::reply_single(Worker& w, int status, const HandlerHeaders& headers, std::string_view body,
                        std::uint64_t hold_ms) {
  const Framing framing = single_write_framing(meta_, body.size());
  if (framing == Framing::close_delimited && after_ == After::keep_alive) after_ = After::close;
  const std::size_t start = out_.size();
  write_head(out_, meta_, status, headers, framing, body.size(), w.clock().date());
  const std::size_t head_bytes = out_.size() - start;
  if (!meta_.head_method) write_single_body(out_, framing, body);
  apply_abort(start, head_bytes);
  if (hold_ms > 0) {
    held_ = true;
    arm_timer(w, hold_ms);
  }
}

void Conn::reply_flushed(Worker& w, int status, const HandlerHeaders& headers,
                         std::string_view body, std::uint64_t hold_ms) {
  const Framing framing = flushed_framing(meta_);
  if (framing == Framing::close_delimited && after_ == After::keep_alive) after_ = After::close;
  const std::size_t start = out_.size();
  write_head(out_, meta_, status, headers, framing, 0, w.clock().date());
  const std::size_t head_bytes = out_.size() - start;
  if (framing == Framing::chunked) {
    write_chunk(out_, body);
    out_.append(last_chunk);
  } else if (framing == Framing::close_delimited) {
    out_.append(body);
  }
  apply_abort(start, head_bytes);
  if (hold_ms > 0) {
    held_ = true;
    arm_timer(w, hold_ms);
  }
}

// X-Fake-Abort-After on a single answer: 0 sends nothing, N > 0 sends the head and half the
// framed body; then the connection is reset.
void Conn::apply_abort(std::size_t start, std::size_t head_bytes) {
  if (head_only_) {
    after_ = After::reset;
    out_.truncate(start + head_bytes);
    return;
  }
  const std::int64_t n = req_.controls.abort_after;
  if (n < 0) return;
  after_ = After::reset;
  if (n == 0) {
    out_.truncate(start);
    return;
  }
  const std::size_t body_bytes = out_.size() - start - head_bytes;
  out_.truncate(start + head_bytes + body_bytes / 2);
}

void Conn::start_stream(Worker& w) {
  framing_ = flushed_framing(meta_);
  if (framing_ == Framing::close_delimited && after_ == After::keep_alive) after_ = After::close;
  script_.build(plan_);
  cursor_ = {};
  head_sent_ = false;
  chunks_sent_ = 0;
  if (req_.controls.abort_after == 0) {  // reset before the head
    after_ = After::reset;
    return;
  }
  if (head_only_) {  // the head Go writes with the first flush, then the reset
    write_stream_head(w);
    after_ = After::reset;
    return;
  }
  streaming_ = true;
  if (req_.controls.delay_ms > 0) {  // every chunk, the first included, waits its delay
    waiting_timer_ = true;
    arm_timer(w, req_.controls.delay_ms);
  }
}

// Go writes the head with the first flushed chunk, so it carries that moment's Date.
void Conn::write_stream_head(Worker& w) {
  HandlerHeaders h = typed(stream_content_type(plan_));
  h.stream_headers = sets_stream_headers(plan_);
  write_head(out_, meta_, 200, h, framing_, 0, w.clock().date());
  head_sent_ = true;
}

}  // namespace tokentap::fake
