// Internal: the fields of Summary, Sample and GpuSample by name, once, for the job file
// (attribute and dataset names, docs/telemetry.md) and the gather's wire format.
#pragma once

#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

namespace sluice::monitor {

// f(name, field) for every field of a Summary (S: Summary or const Summary).
template <class S, class F>
void visit_summary(S& s, F&& f) {
  f("elapsed_s", s.elapsed_s);
  f("threads", s.threads);
  f("steps.count", s.steps.count);
  f("steps.total_s", s.steps.total_s);
  f("steps.time_mean_ms", s.steps.time_mean_ms);
  f("steps.time_p50_ms", s.steps.time_p50_ms);
  f("steps.time_p95_ms", s.steps.time_p95_ms);
  f("steps.time_max_ms", s.steps.time_max_ms);
  f("steps.data_wait_fraction", s.steps.data_wait_fraction);
  f("steps.compute_fraction", s.steps.compute_fraction);
  f("steps.allreduce_fraction", s.steps.allreduce_fraction);
  f("steps.data_wait_p95_ms", s.steps.data_wait_p95_ms);
  f("io.ops", s.io.ops);
  f("io.bytes", s.io.bytes);
  f("io.seconds", s.io.seconds);
  f("io.mb_per_s", s.io.mb_per_s);
  f("io.op_p50_ms", s.io.op_p50_ms);
  f("io.op_p95_ms", s.io.op_p95_ms);
  f("io.op_max_ms", s.io.op_max_ms);
  f("stall.count", s.stall.count);
  f("stall.seconds", s.stall.seconds);
  f("stall.p95_ms", s.stall.p95_ms);
  f("stall.max_ms", s.stall.max_ms);
  f("allreduce.count", s.allreduce.count);
  f("allreduce.bytes", s.allreduce.bytes);
  f("allreduce.seconds", s.allreduce.seconds);
  f("allreduce.algbw_gbps", s.allreduce.algbw_gbps);
  f("allreduce.busbw_gbps", s.allreduce.busbw_gbps);
  f("allreduce.p50_ms", s.allreduce.p50_ms);
  f("allreduce.p95_ms", s.allreduce.p95_ms);
  f("allreduce.max_ms", s.allreduce.max_ms);
}

// f(name, &Sample::member) for the scalar fields of a Sample (not gpus).
template <class F>
void visit_sample_fields(F&& f) {
  f("t_s", &Sample::t_s);
  f("unix_ms", &Sample::unix_ms);
  f("cpu_user_s", &Sample::cpu_user_s);
  f("cpu_sys_s", &Sample::cpu_sys_s);
  f("rss_bytes", &Sample::rss_bytes);
  f("rss_peak_bytes", &Sample::rss_peak_bytes);
  f("io_known", &Sample::io_known);
  f("read_bytes", &Sample::read_bytes);
  f("write_bytes", &Sample::write_bytes);
  f("storage_read_bytes", &Sample::storage_read_bytes);
  f("storage_write_bytes", &Sample::storage_write_bytes);
}

// f(name, &GpuSample::member) for the optional metrics of a GpuSample (not index).
template <class F>
void visit_gpu_fields(F&& f) {
  f("gpu_util_percent", &GpuSample::util_percent);
  f("gpu_mem_util_percent", &GpuSample::mem_util_percent);
  f("gpu_mem_used_bytes", &GpuSample::mem_used_bytes);
  f("gpu_mem_total_bytes", &GpuSample::mem_total_bytes);
  f("gpu_power_watts", &GpuSample::power_watts);
}

}  // namespace sluice::monitor
