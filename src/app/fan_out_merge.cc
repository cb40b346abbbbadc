// fan_out_merge: routes, per-backend outcomes and the merged reply; see fan_out_merge.h and
// the merge rules in fan_out.h. JSON is read with simdjson's DOM (bodies and lines are small,
// at most fan_out_answer_bytes_max); error bodies are written by proxy/error_body, so tokentap's
// own errors and the fan-out's share one escaping.
#include "tokentap/app/fan_out_merge.h"

#include <simdjson.h>

#include "tokentap/app/fan_out.h"
#include "tokentap/proxy/error_body.h"

namespace tokentap {
namespace {

constexpr std::string_view json_utf8 = "application/json; charset=utf-8";

bool ok_status(int status) { return status >= 200 && status < 300; }

// The `error` string of an Ollama error object; false when `json` is not one.
bool error_of(std::string_view json, std::string* out) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return false;
  std::string_view message;
  if (doc["error"].get_string().get(message) != simdjson::SUCCESS) return false;
  out->assign(message);
  return true;
}

bool leg_ok(const LegOutcome& leg) {
  std::string unused;
  return leg.end == LegEnd::answered && ok_status(leg.status) && !error_of(leg.body, &unused);
}

FanOutReply empty_ok() { return FanOutReply{200, {}, {}}; }

}  // namespace

bool pull_streams(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) return true;
  bool stream = true;
  if (doc["stream"].get_bool().get(stream) != simdjson::SUCCESS) return true;  // absent, null
  return stream;
}

PullLine read_pull_line(std::string_view line, std::string* error) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) {
    return PullLine::progress;  // not ours to judge: forwarded as it came
  }
  std::string_view text;
  if (doc["error"].get_string().get(text) == simdjson::SUCCESS) {
    error->assign(text);
    return PullLine::error;
  }
  if (doc["status"].get_string().get(text) == simdjson::SUCCESS && text == "success") {
    return PullLine::success;
  }
  return PullLine::progress;
}

std::string leg_message(const LegOutcome& leg) {
  if (!leg.error.empty()) return leg.error;
  std::string message;
  if (error_of(leg.body, &message)) return message;
  switch (leg.end) {
    case LegEnd::unreachable:
      return "tokentap: backend unreachable";
    case LegEnd::timed_out:
      return "tokentap: backend timed out";
    case LegEnd::closed_early:
      return "tokentap: backend closed the connection early";
    case LegEnd::answered:
      break;
  }
  if (!ok_status(leg.status)) return "tokentap: backend answered " + std::to_string(leg.status);
  return "tokentap: pull ended without success";
}

bool pull_leg_succeeded(const LegOutcome& leg) {
  return leg.end == LegEnd::answered && ok_status(leg.status) && leg.success_line &&
         leg.error.empty();
}

FanOutReply local_error(int status, std::string_view message) {
  char buf[2 * error_message_bytes_max + 64];
  const std::size_t n =
      write_error_body(ErrorDialect::ollama, status, message, 0, buf, sizeof(buf));
  return FanOutReply{status, json_utf8, std::string(buf, n)};
}

FanOutReply leg_failure(const LegOutcome& leg) {
  int status = leg.status >= 400 ? leg.status : 502;
  if (leg.end == LegEnd::timed_out) status = 504;
  return local_error(status, leg.name + ": " + leg_message(leg));
}

FanOutReply merge_pull(const std::vector<LegOutcome>& legs) {
  for (const LegOutcome& leg : legs) {
    if (!leg_ok(leg)) return leg_failure(leg);
  }
  return FanOutReply{200, json_utf8, R"({"status":"success"})"};
}

FanOutReply merge_delete(const std::vector<LegOutcome>& legs) {
  const LegOutcome* first_404 = nullptr;
  bool deleted = false;
  for (const LegOutcome& leg : legs) {
    if (leg_ok(leg)) {
      deleted = true;
    } else if (leg.end == LegEnd::answered && leg.status == 404) {
      if (first_404 == nullptr) first_404 = &leg;
    } else {
      return leg_failure(leg);
    }
  }
  if (deleted || first_404 == nullptr) return empty_ok();
  return FanOutReply{404, json_utf8, first_404->body};  // not on any backend: Ollama's own 404
}

FanOutReply merge_copy(const std::vector<LegOutcome>& legs) {
  for (const LegOutcome& leg : legs) {
    if (!leg_ok(leg)) return leg_failure(leg);
  }
  return empty_ok();
}

int pull_head_failure(const std::vector<LegOutcome>& legs) {
  bool any_head = false;
  for (std::size_t i = 0; i < legs.size(); ++i) {
    if (legs[i].status != 0 && !ok_status(legs[i].status)) return static_cast<int>(i);
    any_head = any_head || legs[i].status != 0;
  }
  return any_head || legs.empty() ? -1 : 0;
}

std::string pull_stream_end(const std::vector<LegOutcome>& legs) {
  for (const LegOutcome& leg : legs) {
    if (!pull_leg_succeeded(leg)) {
      return local_error(500, leg.name + ": " + leg_message(leg)).body + "\n";
    }
  }
  return "{\"status\":\"success\"}\n";
}

std::string_view status_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";  // any reason phrase is valid (RFC 9112 §4); clients read the code
  }
}

std::string reply_bytes(const FanOutReply& reply) {
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " ";
  out += status_reason(reply.status);
  out += "\r\n";
  if (!reply.content_type.empty()) {
    out += "Content-Type: ";
    out += reply.content_type;
    out += "\r\n";
  }
  out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += reply.body;
  return out;
}

}  // namespace tokentap
