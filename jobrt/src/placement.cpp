#include <sluice/common/error.hpp>
#include <sluice/jobrt.h>
#include <sluice/jobrt.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice {

const char* version() noexcept { return SLUICE_VERSION; }

const TaskPlacement& Placement::self() const {
  const TaskPlacement* t = node.find_task(local_task);
  if (!t) throw InvalidArgument("placement record has no entry for local task " + std::to_string(local_task));
  return *t;
}

std::optional<Placement> placement_from_environment() {
  const char* raw = std::getenv("SLUICE_PLACEMENT");
  if (!raw || !*raw) return std::nullopt;
  std::string text = raw;
  if (text.front() != '{') {  // a path to the record
    std::ifstream in(text);
    if (!in) throw InvalidArgument("SLUICE_PLACEMENT names '" + text + "', which cannot be read");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  Placement p;
  p.node = NodePlacement::from_json(text);
  const char* localid = std::getenv("SLURM_LOCALID");
  if (localid && *localid) {
    char* end = nullptr;
    long v = std::strtol(localid, &end, 10);
    if (*end != '\0' || v < 0 || v > 1 << 20) throw InvalidArgument("SLURM_LOCALID='" + std::string(localid) + "' is not a task id");
    p.local_task = int(v);
  }
  p.self();  // fail here, not later, when this task is missing
  return p;
}

}  // namespace sluice

struct sluice_placement {
  sluice::Placement p;
};

namespace {

const sluice::TaskPlacement* task_of(const sluice_placement* p, int task) {
  return p ? p->p.node.find_task(task) : nullptr;
}

void set_error(char* err, std::size_t len, const char* what) {
  if (err && len) {
    std::strncpy(err, what, len - 1);
    err[len - 1] = '\0';
  }
}

}  // namespace

extern "C" {

const char* sluice_version(void) { return sluice::version(); }

int sluice_placement_load(sluice_placement** out, char* err, size_t errlen) {
  if (!out) {
    set_error(err, errlen, "sluice_placement_load: out is NULL");
    return -1;
  }
  *out = nullptr;
  try {
    auto p = sluice::placement_from_environment();
    if (!p) return 1;
    *out = new sluice_placement{std::move(*p)};
    return 0;
  } catch (const std::exception& e) {
    set_error(err, errlen, e.what());
    return -1;
  }
}

void sluice_placement_free(sluice_placement* p) { delete p; }

const char* sluice_placement_node(const sluice_placement* p) { return p ? p->p.node.node.c_str() : ""; }
const char* sluice_placement_policy(const sluice_placement* p) { return p ? p->p.node.policy.c_str() : ""; }
int sluice_placement_local_task(const sluice_placement* p) { return p ? p->p.local_task : -1; }
int sluice_placement_task_count(const sluice_placement* p) { return p ? int(p->p.node.tasks.size()) : -1; }

int sluice_placement_gpu_count(const sluice_placement* p, int task) {
  const auto* t = task_of(p, task);
  return t ? int(t->gpus.size()) : -1;
}

int sluice_placement_gpu(const sluice_placement* p, int task, int i) {
  const auto* t = task_of(p, task);
  return t && i >= 0 && i < int(t->gpus.size()) ? t->gpus[i] : -1;
}

int sluice_placement_nic_count(const sluice_placement* p, int task) {
  const auto* t = task_of(p, task);
  return t ? int(t->nics.size()) : -1;
}

const char* sluice_placement_nic(const sluice_placement* p, int task, int i) {
  const auto* t = task_of(p, task);
  return t && i >= 0 && i < int(t->nics.size()) ? t->nics[i].c_str() : nullptr;
}

const char* sluice_placement_cpus(const sluice_placement* p, int task) {
  const auto* t = task_of(p, task);
  return t ? t->cpus.c_str() : nullptr;
}

}  // extern "C"
