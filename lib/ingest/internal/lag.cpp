// Lag per partition (gauges, readiness) and librdkafka's statistics (cut-off detection).
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {

void Consumer::Impl::UpdateLag() {
  std::lock_guard lock(mu);
  int64_t owned_lag = -1;  // unknown until some owned partition's high watermark is
  for (const bool standbys : {false, true}) {
    for (int32_t p : standbys ? standby : assigned) {
      auto& pr = progress[p];
      int64_t lo, hi;
      if (rd_kafka_get_watermark_offsets(standbys ? standby_rk : rk, pr.topic.c_str(), p, &lo,
                                         &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          hi >= 0) {
        pr.high_watermark = hi;
      }
      if (pr.high_watermark < 0) continue;
      Gauge* lag =
          standbys
              ? metrics->GetGauge("tally_standby_partition_lag",
                                  "Messages in the log not yet applied to a standby copy.",
                                  {{"topic", pr.topic}, {"partition", std::to_string(p)}})
              : metrics->GetGauge("tally_partition_lag", "Messages in the log not yet applied.",
                                  {{"topic", pr.topic}, {"partition", std::to_string(p)}});
      const int64_t behind = std::max<int64_t>(0, pr.high_watermark - pr.next_offset);
      lag->Set(static_cast<double>(behind));
      if (!standbys) owned_lag = std::max<int64_t>(owned_lag, 0) + behind;
    }
  }
  health->OnLag(owned_lag);
}

int Consumer::Impl::StatsCb(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  std::vector<int32_t> owned;
  {
    std::lock_guard lock(self->mu);
    owned = self->assigned;
  }
  std::sort(owned.begin(), owned.end());
  self->health->OnStats(std::string_view(json, json_len), self->options.topic, owned, Clock::now());
  return 0;  // librdkafka frees `json`
}

}  // namespace tally::ingest
