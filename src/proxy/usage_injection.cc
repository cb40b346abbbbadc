// usage_injection: the held-body edit that adds include_usage; see usage_injection.h.
#include "tokentap/proxy/usage_injection.h"

#include <cstring>

namespace tokentap {

InjectResult apply_include_usage(const RequestProbe* probe, Route route, SendQueue& body,
                                 SegmentPool& segs, BufRing& bufs, std::int64_t* content_length) {
  if (probe == nullptr) return InjectResult::untouched;
  const std::uint64_t body_len = body.bytes();
  InjectEdit edit;
  if (plan_include_usage(*probe, route, false, body_len, &edit) != InjectOutcome::injected) {
    return InjectResult::untouched;
  }
  const int text = bufs.alloc_spare();
  if (text < 0) return InjectResult::failed;
  const auto text_id = static_cast<std::uint16_t>(text);
  std::memcpy(bufs.data(text_id), edit.insert().data(), edit.insert().size());
  const bool ok = body.edit(segs, bufs, edit.at, edit.remove, text_id, 0,
                            static_cast<std::uint32_t>(edit.insert().size()));
  bufs.unref(text_id);
  if (!ok) return InjectResult::failed;
  *content_length = static_cast<std::int64_t>(body_len - edit.remove + edit.insert().size());
  return InjectResult::injected;
}

}  // namespace tokentap
