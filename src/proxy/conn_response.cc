// Conn, response side: the upstream's response head (held until complete and valid, then
// rewritten), its body (forwarded by reference, or written by BodyWriter when re-framed), and
// its end. See conn.h for the state machine.
//
// A response head is never forwarded in part: its bytes are held (in place when one recv holds
// the whole head, else copied into a spare buffer up to response_head_bytes_max) until llhttp
// has accepted all of it, so a broken or oversized head becomes a clean 502.
#include <cstring>

#include "tokentap/base/assert.h"
#include "tokentap/proxy/conn.h"
#include "tokentap/proxy/shard.h"

namespace tokentap {

void Conn::process_upstream_data(std::uint16_t buf, std::uint32_t len) {
  const char* data = shard_->bufs().data(buf);
  std::uint32_t off = 0;
  // After a head, llhttp reports the end of a bodyless message (Content-Length: 0, 204, 304)
  // only on its next feed, so one more (possibly empty) feed always follows a head.
  bool after_head = false;
  while ((off < len || after_head) && state_ == State::open) {
    after_head = false;
    if (ex_.resp != Resp::head && ex_.resp != Resp::body) {
      ex_.upstream_dirty = true;  // bytes after the response: never reuse this connection
      break;
    }
    std::uint32_t used = 0;
    bool head_ended = false;
    const bool ok = ex_.resp == Resp::head
                        ? feed_response_head(buf, off, data + off, len - off, &used, &head_ended)
                        : feed_response_body(buf, data, off, len - off, &used);
    if (!ok) return;
    off += used;
    after_head = head_ended && ex_.resp != Resp::done;
  }
  flush_client();
  maybe_finish_exchange();
}

bool Conn::feed_response_head(std::uint16_t buf, std::uint32_t off, const char* data,
                              std::uint32_t len, std::uint32_t* used, bool* ended) {
  std::size_t n = 0;
  const HttpParser::Stop stop = ex_.resp_parser.feed(data, len, &n);
  if (stop == HttpParser::Stop::error) {
    fail_response("tokentap: malformed response from upstream");
    return false;
  }
  if (ex_.informational && stop == HttpParser::Stop::message_done) {
    // The end of a 1xx message (it has no body): the final head follows on the same parser.
    ex_.informational = false;
    *used = static_cast<std::uint32_t>(n);
    return true;
  }
  const bool complete = stop != HttpParser::Stop::need_more;
  *ended = complete;
  const bool in_place = ex_.resp_head_buf < 0 && complete;  // hold_response_head's fast case
  std::string_view head;
  if (!hold_response_head(data, n, complete, &head)) return false;
  *used = static_cast<std::uint32_t>(n);
  if (!complete) return true;
  // A HEAD answer completes with its head: llhttp reports both stops as one.
  return on_response_head(head, stop == HttpParser::Stop::message_done,
                          in_place ? static_cast<std::int32_t>(buf) : -1, off);
}

bool Conn::hold_response_head(const char* data, std::size_t n, bool complete,
                              std::string_view* head) {
  BufRing& bufs = shard_->bufs();
  if (ex_.resp_head_buf < 0 && complete) {
    *head = std::string_view(data, n);  // the whole head in this recv: read it in place
  } else {
    if (ex_.resp_head_len + n > response_head_bytes_max) {
      fail_response("tokentap: response head from upstream too large");
      return false;
    }
    if (ex_.resp_head_buf < 0) ex_.resp_head_buf = bufs.alloc_spare();
    if (ex_.resp_head_buf < 0) {
      fail_response("tokentap: no buffer for the response head");
      return false;
    }
    char* base = bufs.data(static_cast<std::uint16_t>(ex_.resp_head_buf));
    std::memcpy(base + ex_.resp_head_len, data, n);
    ex_.resp_head_len += static_cast<std::uint32_t>(n);
    *head = std::string_view(base, ex_.resp_head_len);
  }
  if (head->size() > response_head_bytes_max) {
    fail_response("tokentap: response head from upstream too large");
    return false;
  }
  return true;
}

// The rewritten head in a spare buffer, queued for the client; false after failing the exchange.
bool Conn::queue_rewritten_response_head(std::string_view head, const ResponseRewriteOptions& opts,
                                         ResponseFacts* facts) {
  BufRing& bufs = shard_->bufs();
  const int out = bufs.alloc_spare();
  std::size_t out_len = 0;
  const RewriteError err =
      out < 0 ? RewriteError::too_large
              : rewrite_response_head(head, opts, bufs.data(static_cast<std::uint16_t>(out)),
                                      buf_bytes, &out_len, facts);
  drop_response_head();
  if (err != RewriteError::ok) {
    if (out >= 0) bufs.unref(static_cast<std::uint16_t>(out));
    fail_response("tokentap: malformed response head from upstream");
    return false;
  }
  const auto out_id = static_cast<std::uint16_t>(out);
  const bool queued = to_client_.push(shard_->segments(), bufs, out_id, 0,
                                      static_cast<std::uint32_t>(out_len));
  bufs.unref(out_id);
  if (!queued) close_now();
  return queued;
}

void Conn::drop_response_head() {
  if (ex_.resp_head_buf >= 0) shard_->bufs().unref(static_cast<std::uint16_t>(ex_.resp_head_buf));
  ex_.resp_head_buf = -1;
  ex_.resp_head_len = 0;
}

// The client can tell where this response ends without the connection closing.
bool Conn::response_length_known() const {
  const int status = ex_.resp_parser.status();
  if (ex_.head_request || status == 204 || status == 304) return true;
  if (ex_.resp_parser.chunked()) return !ex_.http10;
  return ex_.resp_parser.has_content_length();
}

bool Conn::on_response_head(std::string_view head, bool message_done, std::int32_t in_place_buf,
                            std::uint32_t in_place_off) {
  const int status = ex_.resp_parser.status();
  if (status == 101) {
    // tokentap strips Upgrade from every request: a switch nobody asked for is broken framing.
    fail_response("tokentap: upstream switched protocols unasked");
    return false;
  }
  const bool final = status >= 200;
  // Ollama's 503 means its queue is full: another backend may have room (issue 16).
  if (status == 503 && replay_elsewhere(RetryReason::busy)) return false;
  if (final) end_replay();
  ex_.informational = !final;
  if (!final && ex_.http10) {
    drop_response_head();  // RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client
    return true;
  }
  const bool close = final && (ex_.close_after || !ex_.resp_parser.keep_alive() ||
                               (ex_.http10 && !(ex_.keep_alive_10 && response_length_known())));
  const ResponseRewriteOptions opts{ex_.http10, close, final && ex_.http10 && !close};
  ResponseFacts facts;
  if (in_place_buf >= 0 && response_head_as_is(head, opts)) {
    // Nothing to change (Ollama's heads): forwarded by reference, like body bytes.
    if (!to_client_.push(shard_->segments(), shard_->bufs(),
                         static_cast<std::uint16_t>(in_place_buf), in_place_off,
                         static_cast<std::uint32_t>(head.size()))) {
      return close_now(), false;
    }
  } else if (!queue_rewritten_response_head(head, opts, &facts)) {
    return false;
  }
  ex_.response_started = true;
  if (!final) return true;  // 1xx (100 Continue): the final response follows on the same parser
  ex_.close_after = ex_.close_after || close || facts.dechunk;
  ex_.dechunk = facts.dechunk;
  ex_.status = static_cast<std::uint16_t>(status);
  ex_.advance(Resp::body);
  report_response_head(status);
  meter_response_head(status);
  if (ex_.dechunk) {
    ex_.body_out.set_framing(BodyWriter::Framing::raw);
    ex_.resp_parser.set_sink(&Conn::on_response_body, this);
  }
  if (!ex_.head_request && !ex_.dechunk && splice_candidate(ex_.resp_parser)) {
    ex_.splice_mode = Splice::pending_response;
  }
  if (message_done) on_response_done();
  return true;
}

bool Conn::feed_response_body(std::uint16_t buf, const char* data, std::uint32_t off,
                              std::uint32_t len, std::uint32_t* used) {
  std::size_t n = 0;
  const HttpParser::Stop stop = ex_.resp_parser.feed(data + off, len, &n);
  if (n > 0) {
    // A re-framed body reaches the client through the body sink and BodyWriter, not as raw
    // bytes: queue what the sink collected from this piece, so a streamed line leaves now.
    if (ex_.strip || ex_.dechunk) {
      if (!write_body(nullptr, 0)) return false;
    } else if (!to_client_.push(shard_->segments(), shard_->bufs(), buf, off,
                                static_cast<std::uint32_t>(n))) {
      return close_now(), false;
    }
  }
  *used = static_cast<std::uint32_t>(n);
  if (stop == HttpParser::Stop::error) {
    // After some bytes went out a status can no longer be sent: deliver them, then cut.
    fail_response("tokentap: malformed response from upstream");
    return false;
  }
  if (stop == HttpParser::Stop::message_done) on_response_done();
  return state_ == State::open;
}

void Conn::on_response_done() {
  if (ex_.strip) {
    end_stripped_body();
  } else if (ex_.dechunk && !write_body(nullptr, 0)) {
    return;
  }
  if (state_ != State::open) return;
  ex_.advance(Resp::done);
  if (!ex_.resp_parser.keep_alive()) {
    ex_.upstream_dirty = true;
    ex_.close_after = true;
  }
}

// Broken upstream framing: counted, the upstream never reused; the client gets a 502 while no
// response byte reached it, else what came and a cut.
void Conn::fail_response(const char* message) {
  shard_->metrics().upstream_error(UpstreamError::malformed);
  ex_.upstream_dirty = true;
  drop_response_head();
  if (ex_.response_started) return cut_response();
  respond_error(502, "Bad Gateway", message);
}

}  // namespace tokentap
