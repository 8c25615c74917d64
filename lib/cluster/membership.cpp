#include "cluster/membership.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/parse.h"
#include "common/thread.h"
#include "kafka/admin.h"
#include "kafka/producer.h"

namespace tally::cluster {
namespace {

constexpr int kTimeoutMs = 10000;
constexpr int kPollMs = 200;
constexpr int kLeaveFlushMs = 2000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Membership::Reader {
  rd_kafka_t* rk = nullptr;
  ~Reader() {
    if (rk) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }
};

Membership::Membership(MembershipOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Membership>> Membership::Start(const MembershipOptions& options,
                                                      MetricsRegistry* metrics) {
  for (const auto& [value, name] : {std::pair{&options.brokers, "brokers"},
                                    {&options.topic, "topic"},
                                    {&options.instance_id, "instance_id"},
                                    {&options.url, "url"}}) {
    if (value->empty()) {
      return Fail(ErrorCode::kInvalidArgument, std::string("membership: ") + name + " is required",
                  name);
    }
  }
  std::unique_ptr<Membership> m(new Membership(options));
  m->self_.instance_id = options.instance_id;
  m->published_ = metrics->GetCounter("tally_cluster_records_published_total",
                                      "Records this instance published to the cluster topic.");
  m->publish_failures_ =
      metrics->GetCounter("tally_cluster_publish_failures_total",
                          "Records the cluster topic refused to take (they are retried by the "
                          "next change; the consumer group's assignment is unaffected).");
  m->records_read_ = metrics->GetCounter("tally_cluster_records_read_total",
                                         "Records read from the cluster topic.");
  m->gained_ = metrics->GetCounter(
      "tally_cluster_partitions_gained_total",
      "Partitions the consumer group gave this instance (at start, after a failover or a "
      "rebalance).");
  m->owned_gauge_ = metrics->GetGauge("tally_cluster_partitions_owned",
                                      "Partitions of the events topic this instance owns.");
  m->serving_gauge_ = metrics->GetGauge(
      "tally_cluster_partitions_serving",
      "Owned partitions whose views have caught up with the log (the others are restoring).");
  m->standby_gauge_ = metrics->GetGauge(
      "tally_cluster_partitions_standby",
      "Partitions of other instances this instance is asked to keep warm copies of.");

  kafka::ProducerOptions po;
  po.brokers = options.brokers;
  po.linger_ms = 1;
  po.extra = options.extra;
  auto producer = kafka::Producer::Create(po);
  if (!producer) return std::unexpected(producer.error());
  m->producer_ = std::move(*producer);

  auto wm = kafka::Watermarks(options.brokers, options.topic, 0, kTimeoutMs);
  if (!wm) {
    return Fail(ErrorCode::kUnavailable, "cannot read the cluster topic " + options.topic + ": " +
                                             wm.error().message +
                                             " (create it with one partition; compacted)");
  }
  m->end_at_start_ = wm->second;
  if (m->end_at_start_ <= wm->first) m->synced_.store(true);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", options.brokers},
      // assign() needs no group, but a consumer handle wants one; nothing is committed to it.
      {"group.id", "tally-cluster-" + options.instance_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "false"},
      {"auto.offset.reset", "earliest"}};
  for (const auto& kv : options.extra) props.push_back(kv);
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Fail(ErrorCode::kInvalidArgument, "membership: Kafka property " + k + ": " + err, k);
    }
  }
  m->reader_ = std::make_unique<Reader>();
  m->reader_->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!m->reader_->rk) {
    return Fail(ErrorCode::kInternal, std::string("membership: cannot create a consumer: ") + err);
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, options.topic.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(m->reader_->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) {
    return Fail(ErrorCode::kInternal,
                std::string("membership: cannot read the cluster topic: ") + rd_kafka_err2str(e));
  }
  m->thread_ = std::thread([raw = m.get()] {
    NameCurrentThread("tally-cluster");
    raw->ReadLoop();
  });
  // Say who this instance is before it owns anything, so that /readyz lists it at once.
  {
    std::lock_guard lock(m->mu_);
    m->PublishSelf();
  }
  return m;
}

Membership::~Membership() {
  {
    std::lock_guard lock(mu_);
    self_.owned.clear();
    self_.serving.clear();
    self_.standby.clear();
    PublishSelf();
  }
  if (producer_) {
    if (auto s = producer_->Flush(kLeaveFlushMs); !s) {
      spdlog::warn("cluster: could not announce leaving the group: {}", s.error().message);
    }
  }
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void Membership::Publish(const std::string& key, const std::string& value) {
  if (auto s = producer_->Produce(options_.topic, key, value, {}, /*partition=*/0); !s) {
    publish_failures_->Add();
    spdlog::warn("cluster: cannot publish {}: {}", key, s.error().message);
    return;
  }
  published_->Add();
}

void Membership::SetAssignment(std::vector<int32_t> owned, std::vector<int32_t> serving) {
  std::sort(owned.begin(), owned.end());
  std::sort(serving.begin(), serving.end());
  std::lock_guard lock(mu_);
  if (owned == self_.owned && serving == self_.serving) return;
  for (int32_t p : owned) {
    if (!std::binary_search(self_.owned.begin(), self_.owned.end(), p)) gained_->Add();
  }
  owned_gauge_->Set(static_cast<double>(owned.size()));
  serving_gauge_->Set(static_cast<double>(serving.size()));
  self_.owned = std::move(owned);
  self_.serving = std::move(serving);
  PublishSelf();
}

void Membership::PublishSelf() {
  MemberInfo me;
  me.instance_id = options_.instance_id;
  me.url = options_.url;
  me.owned = self_.owned;
  me.serving = self_.serving;
  me.standby = self_.standby;
  me.time_ms = NowMs();
  Publish(MemberKey(me.instance_id), EncodeMember(me));
}

void Membership::SetStandbyListener(std::function<void(const std::vector<int32_t>&)> listener) {
  {
    std::lock_guard lock(listener_mu_);
    standby_listener_ = std::move(listener);
  }
  if (synced_.load()) UpdateStandby(/*force=*/true);
}

void Membership::UpdateStandby(bool force) {
  std::lock_guard listening(listener_mu_);
  std::vector<int32_t> standby;
  {
    std::lock_guard lock(mu_);
    standby = table_.StandbyPartitions(options_.instance_id, options_.standby_replicas);
    // This instance's own assignment is fresher than its published record.
    std::erase_if(standby, [&](int32_t p) {
      return std::binary_search(self_.owned.begin(), self_.owned.end(), p);
    });
    if (standby == self_.standby && !force) return;
    if (standby != self_.standby) {
      self_.standby = standby;
      standby_gauge_->Set(static_cast<double>(standby.size()));
      PublishSelf();
    }
  }
  if (standby_listener_) standby_listener_(standby);
}

void Membership::NoteScope(int32_t partition, std::string_view workspace,
                           std::string_view organization) {
  std::lock_guard lock(mu_);
  ScopeKey(partition, workspace, organization, &scope_key_);
  if (!noted_.insert(scope_key_).second) return;
  // Routed by at once: this instance's views may show the workspace before the record is back.
  if (!workspace.empty()) table_.AddScope(partition, workspace, organization);
  Publish(scope_key_, EncodeScope(partition, workspace, organization));
}

Route Membership::RouteWorkspace(std::string_view workspace) const {
  std::lock_guard lock(mu_);
  return table_.RouteWorkspace(workspace, self_);
}

Route Membership::RouteOrganizations(const std::vector<std::string>& organizations) const {
  std::lock_guard lock(mu_);
  std::set<int32_t> partitions;
  for (const std::string& org : organizations) {
    const auto& p = table_.PartitionsOfOrganization(org);
    partitions.insert(p.begin(), p.end());
  }
  return table_.RoutePartitions(partitions, self_);
}

std::vector<std::string> Membership::Organizations() const {
  std::lock_guard lock(mu_);
  return table_.Organizations();
}

bool Membership::KnowsWorkspace(std::string_view workspace) const {
  std::lock_guard lock(mu_);
  return table_.KnowsWorkspace(workspace);
}

bool Membership::KnowsOrganization(std::string_view organization) const {
  std::lock_guard lock(mu_);
  return table_.KnowsOrganization(organization);
}

std::vector<std::string> Membership::WorkspacesOfOrganization(std::string_view organization) const {
  std::lock_guard lock(mu_);
  return table_.WorkspacesOfOrganization(organization);
}

std::vector<std::string> Membership::OrganizationsOfWorkspace(std::string_view workspace) const {
  std::lock_guard lock(mu_);
  return table_.OrganizationsOfWorkspace(workspace);
}

void Membership::WriteJson(JsonWriter* w) const {
  std::lock_guard lock(mu_);
  w->BeginObject();
  w->Key("instance_id").String(options_.instance_id);
  w->Key("url").String(options_.url);
  w->Key("synced").Bool(synced_.load());
  w->Key("routing");
  table_.WriteJson(w);
  w->EndObject();
}

void Membership::ReadLoop() {
  while (!stop_.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader_->rk, kPollMs);
    if (m == nullptr) continue;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        spdlog::warn("cluster: reading {}: {}", options_.topic, rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    std::string_view key(m->key ? static_cast<const char*>(m->key) : "", m->key_len);
    std::string_view value(m->payload ? static_cast<const char*>(m->payload) : "", m->len);
    records_read_->Add();
    bool applied;
    {
      std::lock_guard lock(mu_);
      applied = table_.Apply(key, value, m->offset);
      if (!applied) {
        spdlog::warn("cluster: ignoring a malformed record at {}[0]@{} (key '{}')", options_.topic,
                     m->offset, key);
      }
    }
    // Ownership changes only with member records; standbys follow once the table is whole.
    const bool was_synced = synced_.load();
    if (m->offset + 1 >= end_at_start_) synced_.store(true);
    const bool member = applied && key.starts_with("member/");
    rd_kafka_message_destroy(m);
    if (options_.standby_replicas > 0 && synced_.load() && (member || !was_synced)) {
      UpdateStandby(/*force=*/false);
    }
  }
}

}  // namespace tally::cluster
