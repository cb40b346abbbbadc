// shard_records: how the obs tests finish a request on a MetricsShard, as the proxy does
// (request_started, then request_finished). Header-only test helper.
#pragma once

#include "tokentap/obs/metrics.h"

namespace tokentap::test {

inline void finish(MetricsShard& s, const RequestRecord& r) {
  s.request_started(r.route, r.model);
  s.request_finished(r);
}

}  // namespace tokentap::test
