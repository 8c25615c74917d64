#pragma once
// Helpers shared by the kafka component's wrappers: config building and handle creation.

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace tally::kafka::internal {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

// A new configuration whose librdkafka log lines go to spdlog (logger "rdkafka").
ConfPtr NewConf();

// Sets each (name, value); kInvalidArgument naming the property on the first failure.
Status SetConf(rd_kafka_conf_t* conf, const std::vector<std::pair<std::string, std::string>>& kv);

// Creates a handle of `type`; takes ownership of `conf` (on success and on failure).
Result<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf);

// A short-lived handle for metadata queries (a consumer without group: it joins nothing).
Result<HandlePtr> NewAdminHandle(std::string_view brokers);

}  // namespace tally::kafka::internal
