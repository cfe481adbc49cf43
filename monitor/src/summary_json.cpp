#include <sluice/monitor/recorder.hpp>

#include <nlohmann/json.hpp>

namespace sluice::monitor {

std::string to_json(const Summary& s, int indent) {
  using nlohmann::json;
  const json j = {
      {"schema", "sluice.monitor.summary/1"},
      {"elapsed_s", s.elapsed_s},
      {"threads", s.threads},
      {"steps",
       {{"count", s.steps.count},
        {"total_s", s.steps.total_s},
        {"time_mean_ms", s.steps.time_mean_ms},
        {"time_p50_ms", s.steps.time_p50_ms},
        {"time_p95_ms", s.steps.time_p95_ms},
        {"time_max_ms", s.steps.time_max_ms},
        {"data_wait_fraction", s.steps.data_wait_fraction},
        {"compute_fraction", s.steps.compute_fraction},
        {"allreduce_fraction", s.steps.allreduce_fraction},
        {"data_wait_p95_ms", s.steps.data_wait_p95_ms}}},
      {"io",
       {{"ops", s.io.ops},
        {"bytes", s.io.bytes},
        {"seconds", s.io.seconds},
        {"mb_per_s", s.io.mb_per_s},
        {"op_p50_ms", s.io.op_p50_ms},
        {"op_p95_ms", s.io.op_p95_ms},
        {"op_max_ms", s.io.op_max_ms}}},
      {"stall", {{"count", s.stall.count}, {"seconds", s.stall.seconds}, {"p95_ms", s.stall.p95_ms}, {"max_ms", s.stall.max_ms}}},
      {"allreduce",
       {{"count", s.allreduce.count},
        {"bytes", s.allreduce.bytes},
        {"seconds", s.allreduce.seconds},
        {"algbw_gbps", s.allreduce.algbw_gbps},
        {"busbw_gbps", s.allreduce.busbw_gbps},
        {"p50_ms", s.allreduce.p50_ms},
        {"p95_ms", s.allreduce.p95_ms},
        {"max_ms", s.allreduce.max_ms}}},
  };
  return j.dump(indent);
}

}  // namespace sluice::monitor
