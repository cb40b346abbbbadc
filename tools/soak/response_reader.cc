// ResponseReader (see response_reader.h).
#include "response_reader.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace tokentap::soak {
namespace {

constexpr int hex_digits_max = 15;  // a chunk size below 2^60

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != b[i]) return false;
  }
  return true;
}

bool icontains(std::string_view hay, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool parse_dec(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_hex(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 16) return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    const int d = hex_value(c);
    if (d < 0) return false;
    v = v * 16 + static_cast<std::uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

ResponseReader::Step ResponseReader::step(const char* p, std::size_t n) {
  switch (phase_) {
    case Phase::status_line:
    case Phase::header_line:
    case Phase::chunk_size:
    case Phase::trailer:
      return line_step(p, n);
    case Phase::body_length:
    case Phase::chunk_data: {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, remaining_));
      remaining_ -= take;
      body_bytes_ += take;
      if (remaining_ == 0) {
        if (phase_ == Phase::body_length) {
          phase_ = Phase::done;
        } else {
          phase_ = Phase::chunk_data_end;
          crlf_seen_ = 0;
        }
      }
      return Step{take, p, take};
    }
    case Phase::chunk_data_end: {
      std::size_t i = 0;
      while (i < n && crlf_seen_ < 2) {
        if (p[i] != "\r\n"[crlf_seen_]) {
          fail("chunk data not followed by CRLF");
          return Step{i + 1, nullptr, 0};
        }
        ++crlf_seen_;
        ++i;
      }
      if (crlf_seen_ == 2) phase_ = Phase::chunk_size;
      return Step{i, nullptr, 0};
    }
    case Phase::body_close:
      body_bytes_ += n;
      return Step{n, p, n};
    case Phase::done:
    case Phase::bad:
      break;
  }
  fail("bytes after the end of the response");
  return Step{n, nullptr, 0};
}

// Head lines, chunk-size lines and trailer lines: gathered up to LF, then interpreted.
ResponseReader::Step ResponseReader::line_step(const char* p, std::size_t n) {
  const void* lf = std::memchr(p, '\n', n);
  const std::size_t upto = lf == nullptr ? n : static_cast<std::size_t>(
                                                   static_cast<const char*>(lf) - p);
  const std::size_t room = line_.size() - line_len_;
  const std::size_t copy = std::min(upto, room);
  std::memcpy(line_.data() + line_len_, p, copy);
  line_len_ = static_cast<std::uint16_t>(line_len_ + copy);
  if (lf == nullptr) return Step{n, nullptr, 0};
  on_line();
  line_len_ = 0;
  return Step{upto + 1, nullptr, 0};
}

void ResponseReader::on_line() {
  switch (phase_) {
    case Phase::status_line:
      on_status_line();
      return;
    case Phase::header_line:
      on_header_line();
      return;
    case Phase::chunk_size:
      on_chunk_size_line();
      return;
    case Phase::trailer:
      if (trim(std::string_view(line_.data(), line_len_)).empty()) phase_ = Phase::done;
      return;
    default:
      return;
  }
}

void ResponseReader::on_status_line() {
  const std::string_view line(line_.data(), line_len_);
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') {
    fail("malformed status line");
    return;
  }
  std::uint64_t code = 0;
  if (!parse_dec(line.substr(9, 3), &code) || code < 100 || code > 999) {
    fail("malformed status code");
    return;
  }
  status_ = static_cast<int>(code);
  close_ = line[7] == '0';  // HTTP/1.0: no keep-alive here
  phase_ = Phase::header_line;
}

void ResponseReader::on_header_line() {
  const std::string_view line(line_.data(), line_len_);
  if (trim(line).empty()) {
    on_head_end();
    return;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    fail("header line without a name");
    return;
  }
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "content-length")) {
    std::uint64_t v = 0;
    if (has_length_ || !parse_dec(value, &v)) {
      fail("bad or repeated Content-Length");
      return;
    }
    has_length_ = true;
    length_ = v;
  } else if (iequals(name, "transfer-encoding")) {
    if (!iequals(value, "chunked")) {
      fail("transfer coding other than chunked");
      return;
    }
    chunked_ = true;
  } else if (iequals(name, "connection")) {
    if (icontains(value, "close")) close_ = true;
  } else if (iequals(name, "x-fake-bytes")) {
    has_fake_bytes_ = parse_dec(value, &fake_bytes_);
  } else if (iequals(name, "x-fake-checksum")) {
    has_fake_checksum_ = parse_hex(value, &fake_checksum_);
  }
}

void ResponseReader::on_head_end() {
  if (status_ < 200) {  // 100 Continue and friends: the real head follows
    *this = ResponseReader{};
    return;
  }
  if (chunked_ && has_length_) {
    fail("both Content-Length and chunked");
    return;
  }
  if (status_ == 204 || status_ == 304) {
    phase_ = Phase::done;
  } else if (chunked_) {
    phase_ = Phase::chunk_size;
  } else if (has_length_) {
    remaining_ = length_;
    phase_ = length_ == 0 ? Phase::done : Phase::body_length;
  } else {
    close_ = true;
    phase_ = Phase::body_close;
  }
}

void ResponseReader::on_chunk_size_line() {
  std::string_view line = trim(std::string_view(line_.data(), line_len_));
  const std::size_t semi = line.find(';');
  if (semi != std::string_view::npos) line = trim(line.substr(0, semi));
  std::uint64_t size = 0;
  if (line.size() > hex_digits_max || !parse_hex(line, &size)) {
    fail("malformed chunk size");
    return;
  }
  if (size == 0) {
    phase_ = Phase::trailer;
    return;
  }
  remaining_ = size;
  phase_ = Phase::chunk_data;
}

void ResponseReader::on_eof() {
  if (phase_ == Phase::body_close) {
    phase_ = Phase::done;
  } else if (phase_ != Phase::done) {
    fail("connection closed mid-response");
  }
}

void ResponseReader::fail(const char* why) {
  if (phase_ != Phase::bad) error_ = why;
  phase_ = Phase::bad;
}

}  // namespace tokentap::soak
