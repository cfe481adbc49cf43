// Remote context (slurmstepd). user_init runs once per step before the tasks fork: it loads
// the topology (the costly part) and reads the step's CPUs. task_init runs in each task
// after Slurm's own binding and GRES environment, so it refines both.
#include "plugin_state.hpp"
#include "task_env.hpp"
#include "topology_cache.hpp"

#include <sluice/common/error.hpp>

extern "C" {
#include <slurm/slurm.h>
}

#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <vector>

namespace sluice::spank {
namespace {

std::optional<std::string> job_getenv(spank_t sp, const std::string& name) {
  std::vector<char> buf(4096);
  for (int tries = 0; tries < 6; ++tries, buf.resize(buf.size() * 4)) {
    spank_err_t rc = spank_getenv(sp, name.c_str(), buf.data(), int(buf.size()));
    if (rc == ESPANK_SUCCESS) return std::string(buf.data());
    if (rc != ESPANK_NOSPACE) return std::nullopt;
  }
  throw InvalidArgument("environment variable " + name + " is longer than 4 MiB");
}

CpuSet current_affinity() {
  for (int ncpus = 1024; ncpus <= (1 << 16); ncpus *= 4) {
    std::unique_ptr<cpu_set_t, void (*)(cpu_set_t*)> set(CPU_ALLOC(ncpus), [](cpu_set_t* s) { CPU_FREE(s); });
    std::size_t size = CPU_ALLOC_SIZE(ncpus);
    if (sched_getaffinity(0, size, set.get()) == 0) {
      std::vector<int> cpus;
      for (int c = 0; c < ncpus; ++c)
        if (CPU_ISSET_S(c, size, set.get())) cpus.push_back(c);
      return CpuSet::from_indices(std::move(cpus));
    }
    if (errno != EINVAL) throw SystemError("sched_getaffinity", errno);
  }
  throw SystemError("sched_getaffinity (more than 65536 CPUs)", EINVAL);
}

void bind_to(const CpuSet& cpus) {
  if (cpus.empty()) return;
  int ncpus = cpus.indices().back() + 1;
  std::unique_ptr<cpu_set_t, void (*)(cpu_set_t*)> set(CPU_ALLOC(ncpus), [](cpu_set_t* s) { CPU_FREE(s); });
  std::size_t size = CPU_ALLOC_SIZE(ncpus);
  CPU_ZERO_S(size, set.get());
  for (int c : cpus.indices()) CPU_SET_S(c, size, set.get());
  if (sched_setaffinity(0, size, set.get()) < 0) throw SystemError("sched_setaffinity(" + cpus.to_string() + ")", errno);
}

bool is_task_step(spank_t sp) {
  std::uint32_t step = 0;
  if (spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS) return false;
  // The batch script, the extern step and salloc's interactive step run no user tasks
  // that sluice should place; srun steps inside them do.
  return step != SLURM_BATCH_SCRIPT && step != SLURM_EXTERN_CONT && step != SLURM_INTERACTIVE_STEP;
}

// Loads the topology (the costly part: once per step) and checks it against the CPUs
// slurmstepd may use, which are the step's allocation (slurmstepd runs in its cpuset).
void prepare_step(PluginState& s) {
  LoadedTopology loaded = load_topology(s.config);
  slurm_debug("sluice: topology of %s read from %s", loaded.topology.source().c_str(),
              loaded.from_snapshot ? "slurmd's snapshot" : "its source (no valid snapshot)");
  s.topology = std::move(loaded.topology);
  s.step_cpus = current_affinity();
  check_cpus_match(*s.topology, s.step_cpus, s.config.cpu_emulation);
  s.placing = true;
}

// Computes the node's placement (cheap, identical in every task) and applies this task's.
int place_task(spank_t sp, const PluginState& s) {
  std::uint32_t local_tasks = 0;
  int task = 0;
  if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &local_tasks) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_TASK_ID, &task) != ESPANK_SUCCESS)
    throw Error("cannot read the local task count or task id from Slurm");
  auto getenv = [&](const std::string& n) { return job_getenv(sp, n); };
  std::vector<int> gpus = step_gpus(getenv).value_or(std::vector<int>{});
  TaskSetup setup = plan_task(*s.topology, s.config, s.policy(), gpus, int(local_tasks), task, s.step_cpus,
                              getenv("SLURMD_NODENAME").value_or(""), getenv("CUDA_VISIBLE_DEVICES"),
                              getenv("ROCR_VISIBLE_DEVICES"));
  for (const auto& [name, value] : setup.env)
    if (spank_setenv(sp, name.c_str(), value.c_str(), 1) != ESPANK_SUCCESS)
      throw Error("cannot set " + name + " in the task's environment");
  bind_to(setup.bind);
  return 0;
}

// The job's burst buffer on this node: exported to every step's tasks; a failed stage-in
// (recorded by the prolog) fails them. The extern step runs no user code. user_init runs
// with the job's uid, so this reads the user's view of the status (root's state is root's
// alone): it decides only what this job's own tasks see, and the burst buffer's path is
// the site's (bb_root/job_ID), never the file's.
void prepare_staging(spank_t sp, PluginState& s) {
  std::uint32_t step = 0;
  std::uint32_t job_id = 0;
  if (spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS || step == SLURM_EXTERN_CONT) return;
  if (spank_get_item(sp, S_JOB_ID, &job_id) != ESPANK_SUCCESS) return;
  const std::string path = staging::job_status_path(s.config.bb_root, job_id);
  std::optional<staging::JobStageStatus> status;
  try {
    status = staging::load_job_status(path);
  } catch (const std::exception& e) {
    s.stage_failure = std::string("cannot read the job's staging status: ") + e.what();
    return;
  }
  char* requested = nullptr;
  static spank_option stage_in{const_cast<char*>("stage-in"), nullptr, nullptr, 1, 0, nullptr};
  const bool wants_stage_in = spank_option_getopt(sp, &stage_in, &requested) == ESPANK_SUCCESS;
  if (!status) {
    if (wants_stage_in)
      s.stage_failure = "--stage-in was given but this node has no staging record for the job (" + path +
                        "): the job prolog did not run or could not prepare the burst buffer (see the slurmd log; the site "
                        "must set PrologFlags=Alloc)";
    return;
  }
  auto set = [&](const char* name, const std::string& value) {
    if (spank_setenv(sp, name, value.c_str(), 1) != ESPANK_SUCCESS) throw Error(std::string("cannot set ") + name);
  };
  set("SLUICE_BB", job_bb_dir(s.config, job_id));
  set("SLUICE_STAGE_STATUS", path);
  set(kStageModeVar, status->mode == "async" ? "async" : "sync");
  if (status->phase == staging::StagePhase::Failed && !status->stage_out_failed) s.stage_failure = escape_text(status->error);
}

// Where the job's telemetry goes (plugstack.conf): the runtime's job file writer and
// Prometheus writer read these. A value the user set already is kept (their own directory).
void export_telemetry_dirs(spank_t sp, const PluginConfig& config) {
  for (const auto& [name, value] : {std::pair{"SLUICE_TELEMETRY_DIR", &config.telemetry_dir},
                                    std::pair{"SLUICE_PROMETHEUS_DIR", &config.prometheus_dir}})
    if (!value->empty() && spank_setenv(sp, name, value->c_str(), 0) != ESPANK_SUCCESS &&
        !job_getenv(sp, name))
      throw Error(std::string("cannot set ") + name + " in the job's environment");
}

}  // namespace

int remote_user_init(spank_t sp) {
  PluginState& s = state();
  s.placing = false;
  s.failure.clear();
  s.stage_failure.clear();
  export_telemetry_dirs(sp, s.config);
  prepare_staging(sp, s);
  if (!s.stage_failure.empty()) {
    slurm_error("sluice: %s", escape_text(s.stage_failure).c_str());
    return 0;  // each task fails in task_init (srun would exit 0 on a user_init failure)
  }
  if (s.policy() == Policy::none || !is_task_step(sp)) return 0;
  try {
    prepare_step(s);
  } catch (const std::exception& e) {
    // Said once here; each task then fails in task_init (see PluginState::failure).
    s.failure = e.what();
    slurm_error("sluice: cannot place this step's tasks: %s", escape_text(e.what()).c_str());
  }
  return 0;
}

int remote_task_init(spank_t sp) {
  PluginState& s = state();
  if (!s.stage_failure.empty()) {
    // In the task, stderr is the job's: the user reads why in the job's error file.
    std::fprintf(stderr, "sluice: this job's stage-in failed on this node: %s\n", escape_text(s.stage_failure).c_str());
    return -1;
  }
  if (!s.failure.empty()) return -1;  // required: the task exits 1; optional: it runs unplaced
  if (!s.placing) return 0;
  return place_task(sp, s);
}

}  // namespace sluice::spank
