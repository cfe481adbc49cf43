#!/usr/bin/env bash
# The sluice demo, from a fresh Debian 12 machine: installs packages, builds and installs
# sluice, starts the embedded dev cluster (2 nodes presenting an IBM AC922 "Lassen" with 4 V100
# and 4 NICs each), and, as the unprivileged user `sluice`:
#   1. runs examples/placement.sbatch: 8 MPI ranks placed by --gpu-topo=pack, each reporting
#      and checking its GPU, NIC and CPUs;
#   2. makes a dataset (sluice-mkdata) and submits examples/train.sbatch: 4 ranks on 2 nodes
#      stage the data into their burst buffers, train an MLP, stage the checkpoint out;
#   3. prints `sluice-report job` for the training job and a `sluice-report cluster` summary.
# The cluster stays up afterwards:
#   source <state>/env.sh; sinfo; sbatch ...;   site/devcluster/sluice-devcluster down
# Run as root. Environment: SLUICE_BUILD_DIR (default <repo>/build), SLUICE_DEVCLUSTER_DIR
# (default /var/lib/sluice-devcluster). The demo's data and runs: /var/tmp/sluice-demo.
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
  --plugin "$prefix/lib/slurm/sluice_spank.so" --topo-tool "$prefix/bin/sluice-topo" \
  --stage-tool "$prefix/bin/sluice-stage"
# shellcheck source=/dev/null
source "$state/env.sh"
user=sluice  # the dev cluster's unprivileged user
as_user() { runuser -u "$user" -- env PATH="$build/demo-examples:$prefix/bin:$PATH" "$@"; }

echo
echo "== The node's topology, as sluice sees it (sluice-topo show)"
"$prefix/bin/sluice-topo" show --xml "$(sed -n 's/^\(required\|optional\) .*topology_xml=\([^ ]*\).*/\2/p' "$state/plugstack.conf")"

demo=/var/tmp/sluice-demo
mkdir -p "$demo" && chown "$user:" "$demo"
show_failure() {  # JOB_OUTPUT_GLOB
  echo "demo.sh: the job failed; its output:" >&2
  cat $1 >&2 || true
  exit 1
}

echo
echo "== 1. examples/placement.sbatch: where --gpu-topo=pack puts 8 ranks"
jobid=$(cd "$demo" && as_user sbatch --parsable --wait -o "$demo/placement-%j.out" "$repo/examples/placement.sbatch") ||
  show_failure "$demo/placement-*.out"
cat "$demo/placement-$jobid.out"

echo
echo "== 2. examples/train.sbatch: stage in, train on 4 ranks, stage the checkpoint out"
if [[ ! -e $demo/data/d-00003-of-00004.h5 ]]; then
  as_user sluice-mkdata --out "$demo/data/d.h5" --samples 16384 --shape 256 --labels 10 --files 4 >/dev/null
fi
echo "dataset: $(ls "$demo/data" | tr '\n' ' ')($(du -sh "$demo/data" | cut -f1))"
jobid=$(cd "$demo" && as_user sbatch --parsable --wait -o "$demo/train-%j.out" "$repo/examples/train.sbatch") ||
  show_failure "$demo/train-*.out"
cat "$demo/train-$jobid.out"
# Stage-out runs in the epilog, just after the job ends.
for _ in $(seq 1 150); do [[ -e $demo/runs/$jobid/checkpoint.bin ]] && break; sleep 0.2; done
echo "checkpoint staged out: $(ls -l "$demo/runs/$jobid/checkpoint.bin" 2>/dev/null || echo "(not there: see $state/log/slurmd-node1.log)")"

echo
echo "== 3. sluice-report job $jobid"
as_user sluice-report job "$jobid" --dir "$state/telemetry"
echo
echo "== sluice-report cluster (every job of the last two hours, by user)"
as_user sluice-report cluster --dir "$state/telemetry" --since now-2h -q

echo
echo "The dev cluster is still up: 'source $state/env.sh' to use it, '$repo/site/devcluster/sluice-devcluster down' to stop it."
