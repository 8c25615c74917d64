#include "common/metrics.h"

#include <gtest/gtest.h>

namespace tally {
namespace {

TEST(MetricsTest, RendersPrometheusText) {
  MetricsRegistry r;
  r.GetCounter("x_total", "Xs.", {{"route", "/a\"b"}})->Add(3);
  r.GetGauge("g", "A gauge.")->Set(2.5);
  Histogram* h = r.GetHistogram("lat_seconds", "Latency.", {}, {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE x_total counter\nx_total{route=\"/a\\\"b\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("g 2.5\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count 3\n"), std::string::npos);
  EXPECT_EQ(r.GetCounter("x_total", "", {{"route", "/a\"b"}})->Value(), 3);
}

}  // namespace
}  // namespace tally
