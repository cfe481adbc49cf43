#include <sluice/monitor.h>
#include <sluice/monitor/recorder.hpp>
#include <sluice/monitor/sampler.hpp>

#include <cstring>
#include <memory>
#include <mutex>

using namespace sluice::monitor;

namespace {
std::mutex g_sampler_mu;
std::unique_ptr<Sampler>& process_sampler() {
  static auto* s = new std::unique_ptr<Sampler>;  // never destroyed (exit may race its thread)
  return *s;
}
}  // namespace

extern "C" {

void sluice_mon_step_begin(void) { default_recorder().step_begin(); }
void sluice_mon_step_end(void) { default_recorder().step_end(); }
void sluice_mon_phase_begin(int phase) {
  if (phase >= SLUICE_MON_DATA_WAIT && phase <= SLUICE_MON_ALLREDUCE) default_recorder().phase_begin(Phase(phase));
}
void sluice_mon_phase_end(void) { default_recorder().phase_end(); }
void sluice_mon_record_io(uint64_t bytes, uint64_t ns) { default_recorder().record_io(bytes, ns); }
void sluice_mon_record_stall(uint64_t ns) { default_recorder().record_stall(ns); }
void sluice_mon_record_allreduce(uint64_t bytes, uint64_t ns, uint32_t ranks) {
  default_recorder().record_allreduce(bytes, ns, ranks);
}
void sluice_mon_set_enabled(int on) { default_recorder().set_enabled(on != 0); }
uint64_t sluice_mon_now_ns(void) { return now_ns(); }

long sluice_mon_summary_json(char* buf, size_t len) {
  try {
    const std::string j = to_json(default_recorder().summary());
    if (buf && len > 0) {
      const size_t n = j.size() < len ? j.size() : len - 1;
      std::memcpy(buf, j.data(), n);
      buf[n] = '\0';
    }
    return long(j.size());
  } catch (...) {
    return -1;
  }
}

int sluice_mon_sampler_start(long interval_ms) {
  try {
    std::lock_guard lock(g_sampler_mu);
    auto& s = process_sampler();
    if (s && s->running()) return 0;
    SamplerOptions o;
    if (interval_ms > 0) o.interval = std::chrono::milliseconds(interval_ms);
    s = std::make_unique<Sampler>(o);
    s->start();
    return 0;
  } catch (...) {
    return -1;
  }
}

int sluice_mon_sampler_stop(long deadline_ms) {
  try {
    std::lock_guard lock(g_sampler_mu);
    auto& s = process_sampler();
    if (!s) return 0;
    return s->stop(std::chrono::milliseconds(deadline_ms > 0 ? deadline_ms : 0)) ? 0 : -1;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
