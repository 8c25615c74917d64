#include "kafka/internal/rdkafka_util.h"

#include <spdlog/spdlog.h>

namespace tally::kafka::internal {
namespace {

void LogToSpdlog(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  spdlog::level::level_enum lvl = spdlog::level::debug;
  if (level <= 3) {
    lvl = spdlog::level::err;
  } else if (level == 4) {
    lvl = spdlog::level::warn;
  } else if (level <= 6) {
    lvl = spdlog::level::info;
  }
  spdlog::log(lvl, "rdkafka {} [{}]: {}", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

}  // namespace

ConfPtr NewConf() {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &LogToSpdlog);
  return conf;
}

Status SetConf(rd_kafka_conf_t* conf, const std::vector<std::pair<std::string, std::string>>& kv) {
  char errstr[512];
  for (const auto& [name, value] : kv) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      return Fail(ErrorCode::kInvalidArgument, "Kafka configuration " + name + ": " + errstr, name);
    }
  }
  return Ok();
}

Result<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
  if (rk == nullptr) {
    return Fail(ErrorCode::kInternal, std::string("Cannot create a Kafka client: ") + errstr);
  }
  conf.release();  // rd_kafka_new took ownership
  return HandlePtr(rk);
}

Result<HandlePtr> NewAdminHandle(std::string_view brokers) {
  ConfPtr conf = NewConf();
  auto st = SetConf(conf.get(),
                    {{"bootstrap.servers", std::string(brokers)}, {"enable.auto.commit", "false"}});
  if (!st) return std::unexpected(st.error());
  return NewHandle(RD_KAFKA_CONSUMER, std::move(conf));
}

}  // namespace tally::kafka::internal
