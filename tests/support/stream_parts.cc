// Stream parts (see stream_parts.h).
#include "support/stream_parts.h"

namespace tokentap::test {

std::vector<std::string> ndjson_lines(std::string_view body, bool* unterminated) {
  std::vector<std::string> lines;
  bool open = false;
  while (!body.empty()) {
    const std::size_t nl = body.find('\n');
    if (nl == std::string_view::npos) {
      lines.emplace_back(body);
      open = true;
      break;
    }
    lines.emplace_back(body.substr(0, nl));
    body.remove_prefix(nl + 1);
  }
  if (unterminated != nullptr) *unterminated = open;
  return lines;
}

std::vector<SseEvent> sse_events(std::string_view body, bool* unterminated) {
  std::vector<SseEvent> events;
  bool open = false;
  while (!body.empty()) {
    const std::size_t end = body.find("\n\n");
    std::string_view block = body.substr(0, end);
    open = end == std::string_view::npos;
    body.remove_prefix(open ? body.size() : end + 2);
    SseEvent ev;
    while (!block.empty()) {
      const std::size_t nl = block.find('\n');
      const std::string_view line = block.substr(0, nl);
      block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
      if (line.substr(0, 7) == "event: ") ev.event = line.substr(7);
      if (line.substr(0, 6) == "data: ") {
        if (!ev.data.empty()) ev.data += '\n';
        ev.data += line.substr(6);
      }
    }
    events.push_back(std::move(ev));
  }
  if (unterminated != nullptr) *unterminated = open;
  return events;
}

std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

void blob_pattern(std::uint64_t offset, std::size_t size, std::string* out) {
  out->resize(size);
  for (std::size_t i = 0; i < size; ++i) (*out)[i] = blob_byte(offset + i);
}

std::size_t blob_mismatch(std::string_view data, std::uint64_t offset) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != blob_byte(offset + i)) return i;
  }
  return data.size();
}

}  // namespace tokentap::test
