// Entry points of the sluice SPANK plugin: one dispatch on spank_context(), and a firewall
// so that no exception or failure can crash or hang slurmd or slurmstepd.
#include "plugin_state.hpp"

#include <sluice/common/error.hpp>

extern "C" {
#include <slurm/slurm.h>
}

#include <exception>
#include <string>
#include <vector>

extern "C" {
// SPANK_PLUGIN() expanded with external linkage: in C++ a const object is file-local.
extern const char plugin_name[] = "sluice";
extern const char plugin_type[] = "spank";
extern const unsigned int plugin_version = SLURM_VERSION_NUMBER;
extern const unsigned int spank_plugin_version = 1;
}

namespace sluice::spank {

PluginState& state() {
  static PluginState s;
  return s;
}

namespace {

// Runs one entry point; every failure becomes a message in the job's stderr (srun/sbatch)
// and the slurmd log, and a -1 that Slurm handles per plugstack.conf's required/optional.
template <typename F>
int guarded(const char* where, F&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    slurm_error("sluice: %s: %s", where, e.what());
  } catch (...) {
    slurm_error("sluice: %s: unexpected failure", where);
  }
  return -1;
}

}  // namespace
}  // namespace sluice::spank

using namespace sluice::spank;

extern "C" int slurm_spank_init(spank_t sp, int ac, char** av) {
  return guarded("init", [&] {
    state().config = parse_plugin_args(std::vector<std::string>(av, av + ac));
    switch (spank_context()) {
      case S_CTX_ALLOCATOR:
      case S_CTX_LOCAL:
      case S_CTX_REMOTE:
        return register_options(sp);
      case S_CTX_SLURMD:
        return slurmd_init();
      default:  // prolog/epilog: staging reads its request from the environment
        return 0;
    }
  });
}

extern "C" int slurm_spank_init_post_opt(spank_t sp, int, char**) {
  return guarded("init_post_opt", [&] {
    const spank_context_t ctx = spank_context();
    return ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL ? allocator_post_opt(sp) : 0;
  });
}

// slurmd's prolog/epilog helper calls these without slurm_spank_init: the plugstack.conf
// arguments come with each call.
extern "C" int slurm_spank_job_prolog(spank_t sp, int ac, char** av) {
  return guarded("job_prolog", [&] {
    state().config = parse_plugin_args(std::vector<std::string>(av, av + ac));
    return job_prolog(sp);
  });
}

extern "C" int slurm_spank_job_epilog(spank_t sp, int ac, char** av) {
  return guarded("job_epilog", [&] {
    state().config = parse_plugin_args(std::vector<std::string>(av, av + ac));
    return job_epilog(sp);
  });
}

extern "C" int slurm_spank_user_init(spank_t sp, int, char**) {
  return guarded("user_init", [&] { return spank_context() == S_CTX_REMOTE ? remote_user_init(sp) : 0; });
}

extern "C" int slurm_spank_task_init(spank_t sp, int, char**) {
  return guarded("task_init", [&] { return spank_context() == S_CTX_REMOTE ? remote_task_init(sp) : 0; });
}

extern "C" int slurm_spank_exit(spank_t, int, char**) {
  return guarded("exit", [] {
    state().topology.reset();
    state().placing = false;
    return 0;
  });
}
