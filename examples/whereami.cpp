// sluice-whereami: every MPI rank reports where sluice placed it (GPUs, NICs, CPUs) and
// checks that what the process really has matches the placement record. With
// --expect FILE it also checks the record against an expected placement (tests).
//
//   srun --gpu-topo=pack --mpi=pmix sluice-whereami [--require] [--expect FILE]
#include <sluice/jobrt.hpp>

#include <mpi.h>
#ifdef SLUICE_WHEREAMI_CUDA
#include <cuda_runtime_api.h>
#endif
#include <sched.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return "?";
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    int last = c;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    out += (out.empty() ? "" : ",") + std::to_string(c) + (last > c ? "-" + std::to_string(last) : "");
    c = last;
  }
  return out;
}

template <typename T>
std::string join(const std::vector<T>& v) {
  std::ostringstream s;
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
  return s.str();
}

// UCX_NET_DEVICES is "mlx5_0:1,mlx5_1:1": compare device names without ports.
std::string ucx_devices_without_ports(const std::string& ucx) {
  std::string out, item;
  std::istringstream in(ucx);
  while (std::getline(in, item, ',')) out += (out.empty() ? "" : ",") + item.substr(0, item.find(':'));
  return out;
}

void expect_eq(std::vector<std::string>& problems, const std::string& what, const std::string& got,
               const std::string& want) {
  if (got != want) problems.push_back(what + " is '" + got + "', expected '" + want + "'");
}

#ifdef SLUICE_WHEREAMI_CUDA
// CUDA device i of this task must be the i-th GPU of its placement (same PCI address).
// Without a usable GPU (a dev cluster, a login node) there is nothing to check.
std::string check_cuda_devices(const sluice::TaskPlacement& me, std::vector<std::string>& problems) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return "CUDA: no usable device, device check skipped";
  if (n != int(me.gpu_pci.size())) {
    problems.push_back("CUDA sees " + std::to_string(n) + " device(s), the placement gives " +
                       std::to_string(me.gpu_pci.size()));
    return "CUDA: device count differs";
  }
  for (int i = 0; i < n; ++i) {
    char bus[32] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, i) != cudaSuccess) {
      problems.push_back("cudaDeviceGetPCIBusId failed for device " + std::to_string(i));
      continue;
    }
    std::string got = bus;  // "0000:04:00.0", possibly upper case
    for (char& c : got) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (got != me.gpu_pci[i]) problems.push_back("CUDA device " + std::to_string(i) + " is " + got + ", placement says " + me.gpu_pci[i]);
  }
  return "CUDA: " + std::to_string(n) + " device(s) match the placement";
}
#endif

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  bool require = false;
  std::string expect_file;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--require")) require = true;
    else if (!std::strcmp(argv[i], "--expect") && i + 1 < argc) expect_file = argv[++i], require = true;
    else if (!std::strcmp(argv[i], "--help")) {
      if (rank == 0)
        std::puts("usage: sluice-whereami [--require] [--expect FILE]\n"
                  "  Prints each rank's placement (node, local task, GPUs, NICs, CPUs) and checks that the\n"
                  "  process's CUDA_VISIBLE_DEVICES, UCX_NET_DEVICES and CPU affinity match it.\n"
                  "  --require      fail when the job was not placed by sluice (no SLUICE_PLACEMENT)\n"
                  "  --expect FILE  also compare this task's record with FILE's entry for the same local task\n"
                  "                 (a placement record; in it, GPU indices are also the expected CUDA_VISIBLE_DEVICES;\n"
                  "                 bound_cpus is compared only where FILE gives it)\n"
                  "Exit status: 0 when every rank's check passed, 1 otherwise.");
      MPI_Finalize();
      return 0;
    }
  }

  std::vector<std::string> problems;
  std::string line;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  try {
    auto placed = sluice::placement_from_environment();
    if (!placed) {
      line = "not placed by sluice (no SLUICE_PLACEMENT)";
      if (require) problems.push_back("SLUICE_PLACEMENT is not set");
    } else {
      const sluice::TaskPlacement& me = placed->self();
      line = "node " + placed->node.node + " task " + std::to_string(me.task) + " policy " + placed->node.policy +
             " gpus [" + join(me.gpus) + "] nics [" + join(me.nics) + "] cpus " + me.cpus + " (" +
             placed->node.cpu_mode + ", bound " + me.bound_cpus + ")";
      // What the process has must match the record.
      if (!me.bound_cpus.empty()) expect_eq(problems, "CPU affinity", affinity(), me.bound_cpus);
      // EFA NICs go to FI_EFA_IFACE, not UCX_NET_DEVICES (docs/placement.md); every other NIC to UCX.
      if (!me.nics.empty()) {
        const std::string efa_list = "," + env("FI_EFA_IFACE") + ",";
        std::vector<std::string> ucx_nics;
        for (const std::string& n : me.nics)
          if (efa_list.find("," + n + ",") == std::string::npos) ucx_nics.push_back(n);
        if (!ucx_nics.empty() || !env("UCX_NET_DEVICES").empty())
          expect_eq(problems, "UCX_NET_DEVICES", ucx_devices_without_ports(env("UCX_NET_DEVICES")), join(ucx_nics));
      }
#ifdef SLUICE_WHEREAMI_CUDA
      line += " | " + check_cuda_devices(me, problems);
#endif
      if (!expect_file.empty()) {
        std::ifstream in(expect_file);
        if (!in) throw std::runtime_error("cannot read " + expect_file);
        std::stringstream ss;
        ss << in.rdbuf();
        sluice::NodePlacement want = sluice::NodePlacement::from_json(ss.str());
        const sluice::TaskPlacement* w = want.find_task(me.task);
        if (!w) throw std::runtime_error(expect_file + " has no task " + std::to_string(me.task));
        expect_eq(problems, "record gpus", join(me.gpus), join(w->gpus));
        expect_eq(problems, "record nics", join(me.nics), join(w->nics));
        expect_eq(problems, "record cpus", me.cpus, w->cpus);
        // bound_cpus depends on the real machine under emulation: checked when stated.
        if (!w->bound_cpus.empty()) expect_eq(problems, "record bound_cpus", me.bound_cpus, w->bound_cpus);
        expect_eq(problems, "CUDA_VISIBLE_DEVICES", env("CUDA_VISIBLE_DEVICES"), join(w->gpus));
        expect_eq(problems, "local task count", std::to_string(placed->node.tasks.size()), std::to_string(want.tasks.size()));
      }
    }
  } catch (const std::exception& e) {
    problems.push_back(e.what());
  }

  std::string report = "rank " + std::to_string(rank) + "/" + std::to_string(size) + " on " + host + ": " + line +
                       " | CUDA_VISIBLE_DEVICES=" + env("CUDA_VISIBLE_DEVICES") + " UCX_NET_DEVICES=" +
                       env("UCX_NET_DEVICES") + " affinity=" + affinity();
  for (const auto& p : problems) report += "\n    FAIL: " + p;

  // Rank 0 prints every rank's report in rank order.
  int len = int(report.size());
  std::vector<int> lens(size);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> displs(size, 0);
  for (int i = 1; i < size; ++i) displs[i] = displs[i - 1] + lens[i - 1];
  std::vector<char> all(rank == 0 ? displs[size - 1] + lens[size - 1] : 0);
  MPI_Gatherv(report.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  int failed = problems.empty() ? 0 : 1, total_failed = 0;
  MPI_Reduce(&failed, &total_failed, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    for (int i = 0; i < size; ++i) std::printf("%.*s\n", lens[i], all.data() + displs[i]);
    std::printf("placement check: %d of %d ranks passed\n", size - total_failed, size);
  }
  MPI_Bcast(&total_failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return total_failed == 0 ? 0 : 1;
}
