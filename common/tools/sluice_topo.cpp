// sluice-topo: what sluice sees of a node and where it would place tasks there.
#include <sluice/common/error.hpp>
#include <sluice/common/placement.hpp>
#include <sluice/common/strings.hpp>
#include <sluice/common/topology.hpp>
#include <sluice/common/topology_report.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

namespace {

sluice::topo::Topology load(const std::string& xml) {
  return xml.empty() ? sluice::topo::Topology::from_system() : sluice::topo::Topology::from_xml(xml);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-topo: the GPU/NIC/CPU topology of a node, and the placement sluice gives tasks on it.\n"
      "Reads this machine through hwloc, or an hwloc XML export with --xml (lstopo --of xml)."};
  app.footer(
      "EXAMPLES\n"
      "  sluice-topo show                               # this machine, like nvidia-smi topo -m\n"
      "  sluice-topo show --xml coral-lassen.xml        # a machine you do not have\n"
      "  sluice-topo bind --xml lassen.xml --gpus 0-3 --tasks 4 --policy pack --json\n"
      "  sluice-topo gres-conf --nodes 'gpu[01-64]' > /etc/slurm/gres.conf\n\n"
      "EXIT STATUS\n  0 success; 1 bad input or unreadable topology (the message says which); 2 usage error.");
  app.require_subcommand(1);
  std::string xml;

  auto* show = app.add_subcommand("show", "Print the device matrix nvidia-smi topo -m prints: path class between every pair "
                                          "of GPUs and NICs (NV#, XGMI, PIX, PXB, PHB, NODE, SYS), CPU and NUMA affinity, and "
                                          "which NICs placement uses and why the others are left out.");
  show->add_option("--xml", xml, "hwloc XML export to read instead of this machine")->check(CLI::ExistingFile);
  std::string nics, exclude_nics;
  const char* nics_help = "NIC name patterns (shell globs on the NIC or its IP interface, comma-separated: hsn*,mlx5_[0-3]) "
                          "placement may use, as plugstack.conf's nics=; default: the automatic ranking";
  const char* exclude_help = "NIC name patterns placement must not use, as plugstack.conf's exclude_nics=";
  show->add_option("--nics", nics, nics_help);
  show->add_option("--exclude-nics", exclude_nics, exclude_help);

  std::string gpus = "all", policy = "pack", allowed;
  int tasks = 1;
  bool json = false;
  auto* bind = app.add_subcommand("bind", "Compute the placement of N local tasks on the given GPUs: each task's GPUs, "
                                          "closest NIC(s), CPU set in its GPU's NUMA domain. This is what the SPANK "
                                          "plugin applies for --gpu-topo.");
  bind->add_option("--xml", xml, "hwloc XML export to read instead of this machine")->check(CLI::ExistingFile);
  bind->add_option("--gpus", gpus, "GPUs allocated on the node, by PCI-order index, in list syntax (0-3 or 0,2) or 'all'")
      ->capture_default_str();
  bind->add_option("--tasks", tasks, "local task count")->required()->check(CLI::Range(1, 4096));
  bind->add_option("--policy", policy, "pack: best-connected GPUs together, NVLink first; spread: across sockets and "
                                       "PCIe switches; none: leave Slurm's binding alone")
      ->check(CLI::IsMember({"pack", "spread", "none"}))
      ->capture_default_str();
  bind->add_option("--nics", nics, nics_help);
  bind->add_option("--exclude-nics", exclude_nics, exclude_help);
  bind->add_option("--cpus", allowed, "CPUs the step may use (OS indices, list syntax); default: every CPU of the topology");
  bind->add_flag("--json", json, "print the placement record as JSON: {\"tasks\":[{\"task\":0,\"gpus\":[0],\"nics\":[...],"
                                 "\"cpus\":\"0-19\",\"numa\":[0]},...]}");

  std::string nodes, device_dir;
  auto* gres = app.add_subcommand("gres-conf", "Print gres.conf lines for the node's GPUs (File=, Cores=, Links=) and, "
                                               "as a comment, the NodeName CPU shape for slurm.conf.");
  gres->add_option("--xml", xml, "hwloc XML export to read instead of this machine")->check(CLI::ExistingFile);
  gres->add_option("--nodes", nodes, "NodeName= to put on every line, e.g. 'gpu[01-64]'");
  gres->add_option("--device-dir", device_dir, "directory of the device files File= names (default /dev)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is a "parse error" that exits 0
  }
  try {
    sluice::topo::NicPolicy nic_policy;
    if (!nics.empty()) nic_policy.allow = sluice::topo::parse_nic_patterns(nics, "--nics ");
    if (!exclude_nics.empty()) nic_policy.exclude = sluice::topo::parse_nic_patterns(exclude_nics, "--exclude-nics ");
    sluice::topo::Topology topo = load(xml);
    if (*show) {
      std::cout << sluice::topo::format_matrix(topo, nic_policy);
    } else if (*gres) {
      std::cout << sluice::topo::format_gres_conf(topo, {nodes, device_dir});
    } else {
      sluice::PlacementRequest req;
      if (gpus != "all") req.gpus = sluice::CpuSet::parse(gpus, "GPU list").indices();
      if (req.gpus && req.gpus->empty()) throw sluice::InvalidArgument("--gpus is empty (omit it for all GPUs)");
      req.tasks = tasks;
      req.policy = sluice::parse_policy(policy);
      req.nics = nic_policy;
      if (!allowed.empty()) req.allowed_cpus = sluice::CpuSet::parse(allowed);
      sluice::NodePlacement np = sluice::place(topo, req);
      if (json) {
        std::cout << np.to_json() << "\n";
      } else {
        std::cout << fmt::format("Placement of {} task(s), policy {}, topology {}\n", tasks, np.policy, np.topology);
        std::cout << fmt::format("{:<6}{:<12}{:<22}{:<24}{}\n", "TASK", "GPUS", "NICS", "CPUS", "NUMA");
        for (const auto& t : np.tasks)
          std::cout << fmt::format("{:<6}{:<12}{:<22}{:<24}{}\n", t.task, sluice::join(t.gpus, ",", "-"), sluice::join(t.nics, ",", "-"),
                                   t.cpus.empty() ? "-" : t.cpus, sluice::join(t.numa, ",", "-"));
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "sluice-topo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
