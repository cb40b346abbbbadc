// http1: llhttp glue (HttpParser); the head rewrites are request_head.cc and response_head.cc.
// See http1.h.
#include "tokentap/http/http1.h"

#include <array>
#include <cstdio>
#include <cstring>

#include "tokentap/base/assert.h"

namespace tokentap {

const llhttp_settings_t HttpParser::settings_ = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_headers_complete = &HttpParser::on_headers_complete;
  s.on_message_complete = &HttpParser::on_message_complete;
  s.on_body = &HttpParser::on_body;
  return s;
}();

void HttpParser::init(llhttp_type_t type) {
  sink_ = nullptr;
  llhttp_init(&parser_, type, &settings_);
  // Any single-digit version parses; the head rewrites decide (1.x kept, others refused), so
  // `HTTP/1.2` is read as 1.1 (RFC 9112 §2.3) and `HTTP/3.0` gets a 505, not a 400.
  parser_.lenient_flags |= LENIENT_VERSION;
  parser_.data = this;
  no_body_ = false;
  request_ = type == HTTP_REQUEST;
  upgrade_ = false;
  bodyless_ = false;
  content_length_ = 0;
  pending_ = Stop::need_more;
}

void HttpParser::init_request() { init(HTTP_REQUEST); }

void HttpParser::init_response() { init(HTTP_RESPONSE); }

int HttpParser::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->content_length_ = p->content_length;
  self->upgrade_ = p->upgrade != 0;
  self->bodyless_ = false;
  // A request that asked for an upgrade (h2c, websocket) is forwarded without Upgrade, so the
  // bytes after it are the next HTTP/1.1 request. llhttp reads the flag after this callback,
  // both to frame the body and at the message end; cleared here, it frames the body as usual
  // and goes on to the next request instead of stopping in HPE_PAUSED_UPGRADE (which left the
  // connection wedged, issue 20). CONNECT keeps it: what follows its head is a tunnel.
  if (self->request_ && p->method != HTTP_CONNECT) p->upgrade = 0;
  if (self->no_body_) {
    self->bodyless_ = true;
    self->content_length_ = 0;
    // A response to HEAD: llhttp cannot know the method, so tell it there is no body.
    // The message then completes at once and its pause reports both stops together.
    return 1;
  }
  const int status = p->status_code;
  if (!self->request_ && (status < 200 || status == 204 || status == 304)) {
    // RFC 9112 §6.3 rule 1: a 1xx, 204 or 304 response ends at its head whatever its
    // Content-Length or Transfer-Encoding say; llhttp 8 would read that many bytes of the next
    // response as a body. F_SKIPBODY is what returning 1 sets; set by hand, the head pause
    // below is kept, so the caller still sees head_done, then message_done.
    p->flags |= F_SKIPBODY;
    self->bodyless_ = true;
    self->content_length_ = 0;  // a Content-Length here describes a body that is not sent
  }
  self->pending_ = Stop::head_done;
  return HPE_PAUSED;
}

int HttpParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->pending_ = Stop::message_done;
  return HPE_PAUSED;
}

int HttpParser::on_body(llhttp_t* p, const char* at, std::size_t len) {
  auto* self = static_cast<HttpParser*>(p->data);
  if (self->sink_ != nullptr) self->sink_(self->sink_ctx_, at, len);
  return 0;
}

HttpParser::Stop HttpParser::feed(const char* data, std::size_t n, std::size_t* used) {
  pending_ = Stop::need_more;
  const llhttp_errno_t err = llhttp_execute(&parser_, data, n);
  if (err == HPE_OK) {
    *used = n;
    return Stop::need_more;
  }
  if (err == HPE_PAUSED) {
    *used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
    llhttp_resume(&parser_);
    TT_ASSERT(pending_ != Stop::need_more);
    return pending_;
  }
  // HPE_PAUSED_UPGRADE (after a CONNECT request or a 101 response) lands here too: the bytes
  // that follow are another protocol, which the proxy never speaks, so they are an error.
  // The bytes before the offending one were valid (a complete chunk before a bad size line):
  // the caller may still forward them before failing the message.
  const char* pos = llhttp_get_error_pos(&parser_);
  *used = pos >= data && pos <= data + n ? static_cast<std::size_t>(pos - data) : 0;
  return Stop::error;
}

HttpParser::Stop HttpParser::finish() {
  pending_ = Stop::need_more;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED || pending_ == Stop::message_done) return Stop::message_done;
  // HPE_OK without a callback: no message was in progress at EOF.
  return err == HPE_OK ? Stop::need_more : Stop::error;
}

}  // namespace tokentap
