// ResponseReader: an incremental HTTP/1.1 response parser for the soak client.
//
// It is fed whatever recv() returned and reports the body bytes (de-chunked) as spans into the
// caller's buffer, so the client can compare them with a reference body without copying. It
// keeps only the current head or chunk-size line (line_bytes_max), so 10,000 readers cost a few
// MiB. Framing: Content-Length, chunked (extensions and trailers skipped), or close-delimited
// when a response has neither; 1xx heads are skipped; 204/304 have no body.
//
// Headers it remembers: Content-Length, Transfer-Encoding, Connection (close), and the fake
// upstream's X-Fake-Bytes / X-Fake-Checksum of a blob upload. Anything malformed is `bad` with a
// short static reason; the soak counts it as an unexpected outcome.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace tokentap::soak {

constexpr std::size_t line_bytes_max = 512;  // longer header lines are cut (values we read fit)

class ResponseReader {
 public:
  enum class Phase : std::uint8_t {
    status_line,
    header_line,
    body_length,  // Content-Length body
    chunk_size,
    chunk_data,
    chunk_data_end,  // the CRLF after a chunk's data
    trailer,
    body_close,  // close-delimited body: ends at EOF
    done,
    bad,
  };

  // One parse step: `consumed` input bytes, of which [body, body+body_len) are body bytes.
  struct Step {
    std::size_t consumed = 0;
    const char* body = nullptr;
    std::size_t body_len = 0;
  };

  void reset() { *this = ResponseReader{}; }
  // Parses from p (n > 0) until the phase changes or the input is used up.
  [[nodiscard]] Step step(const char* p, std::size_t n);
  // The connection hit EOF: a close-delimited body is complete now; anything else is cut.
  void on_eof();

  [[nodiscard]] Phase phase() const { return phase_; }
  [[nodiscard]] bool done() const { return phase_ == Phase::done; }
  [[nodiscard]] bool failed() const { return phase_ == Phase::bad; }
  [[nodiscard]] bool head_done() const { return phase_ > Phase::header_line; }
  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] bool chunked() const { return chunked_; }
  // The server will close after this response (Connection: close, HTTP/1.0, close-delimited).
  [[nodiscard]] bool closes() const { return close_; }
  [[nodiscard]] std::uint64_t body_bytes() const { return body_bytes_; }
  [[nodiscard]] bool has_fake_bytes() const { return has_fake_bytes_; }
  [[nodiscard]] std::uint64_t fake_bytes() const { return fake_bytes_; }
  [[nodiscard]] bool has_fake_checksum() const { return has_fake_checksum_; }
  [[nodiscard]] std::uint64_t fake_checksum() const { return fake_checksum_; }
  [[nodiscard]] const char* error() const { return error_; }

 private:
  Step line_step(const char* p, std::size_t n);
  void on_line();
  void on_status_line();
  void on_header_line();
  void on_head_end();
  void on_chunk_size_line();
  void fail(const char* why);

  std::array<char, line_bytes_max> line_{};
  std::uint16_t line_len_ = 0;
  Phase phase_ = Phase::status_line;
  bool chunked_ = false;
  bool has_length_ = false;
  bool close_ = false;
  bool has_fake_bytes_ = false;
  bool has_fake_checksum_ = false;
  int status_ = 0;
  std::uint64_t length_ = 0;     // Content-Length, or the current chunk's size
  std::uint64_t remaining_ = 0;  // of the Content-Length body or the current chunk
  std::uint64_t body_bytes_ = 0;
  std::uint64_t fake_bytes_ = 0;
  std::uint64_t fake_checksum_ = 0;
  std::uint8_t crlf_seen_ = 0;  // chunk_data_end: bytes of "\r\n" matched
  const char* error_ = nullptr;
};

}  // namespace tokentap::soak
