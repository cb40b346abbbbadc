// Stream parts: splitting response bodies the way a client reads them, for tests that check the
// proxy and the fake upstream: NDJSON lines, SSE events, and the fake's blob byte pattern.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokentap::test {

// Lines of an NDJSON body, without their '\n'. A final piece without '\n' is returned too, and
// *unterminated (if given) says whether there was one.
[[nodiscard]] std::vector<std::string> ndjson_lines(std::string_view body,
                                                    bool* unterminated = nullptr);

struct SseEvent {
  std::string event;  // the `event:` field, empty if none
  std::string data;   // the `data:` field(s), joined with '\n'
};

// Events of a text/event-stream body ("\n\n"-separated). A final event without its blank line
// is returned too, and *unterminated says so.
[[nodiscard]] std::vector<SseEvent> sse_events(std::string_view body, bool* unterminated = nullptr);

// FNV-1a 64, the checksum the fake upstream reports for uploads (X-Fake-Checksum).
[[nodiscard]] std::uint64_t fnv1a64(std::string_view bytes,
                                    std::uint64_t seed = 14695981039346656037ull);

// The byte at `offset` of GET /fake/blob: (offset*31+7) & 0xff.
[[nodiscard]] constexpr char blob_byte(std::uint64_t offset) {
  return static_cast<char>((offset * 31 + 7) & 0xff);
}
// Fills `out` with `size` pattern bytes starting at `offset`.
void blob_pattern(std::uint64_t offset, std::size_t size, std::string* out);
// Index of the first byte of `data` (which starts at stream offset `offset`) that breaks the
// pattern, or data.size() if none does.
[[nodiscard]] std::size_t blob_mismatch(std::string_view data, std::uint64_t offset = 0);

}  // namespace tokentap::test
