#!/usr/bin/env bash
# The sluice demo, from a fresh Debian 12 machine: installs packages, builds sluice, starts
# the embedded dev cluster (2 nodes presenting an IBM AC922 "Lassen" with 4 V100 and 4 NICs
# each), and runs examples/placement.sbatch: 8 MPI ranks placed by --gpu-topo=pack, each
# reporting and checking its GPU, NIC and CPUs. The cluster stays up afterwards:
#   source <state>/env.sh; sinfo; sbatch ...;   site/devcluster/sluice-devcluster down
# Run as root. Environment: SLUICE_BUILD_DIR (default <repo>/build).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$repo/build}
prefix=$build/demo-prefix
state=${SLUICE_DEVCLUSTER_DIR:-/var/lib/sluice-devcluster}

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root: it installs packages and starts munge, slurmctld and slurmd" >&2
  exit 1
fi
"$repo/site/install-deps.sh"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
# The example links the installed runtime, as a user's training code would.
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$repo/examples" -B "$build/demo-examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/demo-examples" -j"$(nproc)" >/dev/null

SLUICE_DEVCLUSTER_DIR=$state "$repo/site/devcluster/sluice-devcluster" up \
  --plugin "$prefix/lib/slurm/sluice_spank.so" --topo-tool "$prefix/bin/sluice-topo"
# shellcheck source=/dev/null
source "$state/env.sh"

echo
echo "== The node's topology, as sluice sees it (sluice-topo show)"
"$prefix/bin/sluice-topo" show --xml "$(sed -n 's/^\(required\|optional\) .*topology_xml=\([^ ]*\).*/\2/p' "$state/plugstack.conf")"

echo
echo "== Submitting examples/placement.sbatch"
out=$state/demo
mkdir -p "$out"
export PATH=$build/demo-examples:$PATH
jobid=$(cd "$out" && sbatch --parsable --wait -o "$out/demo-%j.out" "$repo/examples/placement.sbatch") || {
  echo "demo.sh: the demo job failed; its output:" >&2
  cat "$out"/demo-*.out >&2 || true
  exit 1
}
echo "job $jobid finished; its output ($out/demo-$jobid.out):"
cat "$out/demo-$jobid.out"
echo
echo "The dev cluster is still up: 'source $state/env.sh' to use it, '$repo/site/devcluster/sluice-devcluster down' to stop it."
