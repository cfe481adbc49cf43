#!/usr/bin/env bash
# The sluice demo, from a fresh Debian 12 machine and a clone anywhere: installs packages,
# builds sluice, installs it where the dev cluster's daemons and its unprivileged user can
# reach it, starts the embedded dev cluster (2 nodes presenting an IBM AC922 "Lassen" with 4
# V100 and 4 NICs each), and, as the unprivileged user `sluice`:
#   1. runs examples/placement.sbatch: 8 MPI ranks placed by --gpu-topo=pack, each reporting
#      and checking its GPU, NIC and CPUs;
#   2. makes a dataset (sluice-mkdata) and submits examples/train.sbatch: 4 ranks on 2 nodes
#      stage the data into their burst buffers, train an MLP, stage the checkpoint out;
#   3. prints `sluice-report job` for the training job and a `sluice-report cluster` summary.
# Run with --help for where it puts things.
set -euo pipefail
umask 022 # what it installs is read by other users

usage() {
  cat <<'EOF2'
usage: site/demo.sh [--help]     (as root)

Builds sluice in the clone (SLUICE_BUILD_DIR, default <repo>/build), installs it into the
dev cluster's state dir (STATE/prefix; its examples are built in STATE/examples), starts the
dev cluster and runs the demo jobs as the unprivileged user `sluice`. The clone can be
anywhere (root's 0700 home, /tmp, a path with blanks): the daemons and the user run only the
installed copy.

Each run writes its job scripts, dataset, job output and staged-out checkpoint into a new
directory SLUICE_DEMO_DIR/run-<date>-<pid> and reads only what it wrote there.

Environment:
  SLUICE_BUILD_DIR         build dir (default <repo>/build)
  SLUICE_DEVCLUSTER_DIR    the dev cluster's state dir (default /var/lib/sluice-devcluster);
                           every user must be able to enter it, and it must not be under /tmp
  SLUICE_DEMO_DIR          where the runs go (default /var/tmp/sluice-demo), same rules
  SLUICE_DEMO_SBATCH_ARGS  extra sbatch options for both jobs (e.g. --gpu-topo=spread)

The cluster stays up afterwards: 'source STATE/env.sh', then sinfo, sbatch, ...
'site/devcluster/sluice-devcluster down' stops it; 'down --purge' also removes STATE with
everything installed there.
EOF2
}
case ${1:-} in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "demo.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$repo/build}
state=${SLUICE_DEVCLUSTER_DIR:-/var/lib/sluice-devcluster}
demo=${SLUICE_DEMO_DIR:-/var/tmp/sluice-demo}
read -r -a extra_sbatch <<<"${SLUICE_DEMO_SBATCH_ARGS:-}"
# shellcheck source=site/lib/paths.sh
source "$repo/site/lib/paths.sh"
die() { echo "demo.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages and starts munge, slurmctld and slurmd"
# Before minutes of building: the places the daemons and the demo user must reach.
why=$(why_unreachable "$state" dir)
[[ -z $why ]] || die "the dev cluster's state dir $state cannot be used: $why; set SLUICE_DEVCLUSTER_DIR to a directory every user can enter outside /tmp (default /var/lib/sluice-devcluster)"
why=$(why_unreachable "$demo" dir)
[[ -z $why ]] || die "the demo dir $demo cannot be used: $why; set SLUICE_DEMO_DIR to a directory every user can enter outside /tmp (default /var/tmp/sluice-demo)"
state=$(readlink -m "$state") demo=$(readlink -m "$demo")
prefix=$state/prefix     # plugin, tools, libraries: what slurmd, slurmstepd and the user run
examples=$state/examples # the examples, built against $prefix

"$repo/site/install-deps.sh"
# A new build dir builds only what is installed (no tests); an existing one keeps its options.
opts=()
[[ -e $build/CMakeCache.txt ]] || opts=(-DSLUICE_BUILD_TESTS=OFF)
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${opts[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cmake --install "$build" --prefix "$prefix" >/dev/null
# The examples link the installed runtime, as a user's training code would. A build dir of
# another clone's examples cannot be reused (CMake ties it to its source dir).
if [[ -r $examples/CMakeCache.txt ]] &&
  ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$repo/examples" "$examples/CMakeCache.txt"; then
  rm -rf "$examples"
fi
cmake -S "$repo/examples" -B "$examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$examples" -j"$(nproc)" >/dev/null

SLUICE_DEVCLUSTER_DIR=$state "$repo/site/devcluster/sluice-devcluster" up \
  --plugin "$prefix/lib/slurm/sluice_spank.so" --topo-tool "$prefix/bin/sluice-topo" \
  --stage-tool "$prefix/bin/sluice-stage"
# shellcheck source=/dev/null
source "$state/env.sh"
user=sluice  # the dev cluster's unprivileged user
as_user() { runuser -u "$user" -- env PATH="$examples:$prefix/bin:$PATH" "$@"; }

echo
echo "== The node's topology, as sluice sees it (sluice-topo show)"
"$prefix/bin/sluice-topo" show --xml "$state/topology.xml"

# This run's own directory: nothing in it comes from an earlier run.
mkdir -p "$demo" && chmod 0755 "$demo"
run=$(mktemp -d "$demo/run-$(date +%Y%m%d-%H%M%S)-XXXX")
chmod 0755 "$run" && chown "$user:" "$run"
echo
echo "== This run's job scripts, data and output: $run"
# The job scripts a user would copy, pointed at this run's directory.
cp "$repo/examples/placement.sbatch" "$run/placement.sbatch"
sed "s|/var/tmp/sluice-demo|$run|g" "$repo/examples/train.sbatch" >"$run/train.sbatch"

# submit NAME: runs $run/NAME.sbatch as the user and waits; prints the job id. On failure,
# prints that job's own output (or that it wrote none) and exits.
submit() {
  local name=$1 out jobid rc=0
  jobid=$(cd "$run" && as_user sbatch --parsable --wait "${extra_sbatch[@]}" -o "$run/$name-%j.out" "$run/$name.sbatch") || rc=$?
  jobid=${jobid%%;*}
  if ((rc != 0)); then
    if [[ -z $jobid ]]; then
      echo "demo.sh: sbatch did not submit $name.sbatch (exit $rc; its message is above)" >&2
      exit 1
    fi
    out=$run/$name-$jobid.out
    if [[ -s $out ]]; then
      echo "demo.sh: job $jobid ($name.sbatch) failed (exit $rc); its output, $out:" >&2
      sed 's/^/  | /' "$out" >&2
    else
      echo "demo.sh: job $jobid ($name.sbatch) failed (exit $rc) and wrote no output ($out); see $state/log/" >&2
    fi
    exit 1
  fi
  echo "$jobid"
}

echo
echo "== 1. examples/placement.sbatch: where --gpu-topo=pack puts 8 ranks"
jobid=$(submit placement)
cat "$run/placement-$jobid.out"

echo
echo "== 2. examples/train.sbatch: stage in, train on 4 ranks, stage the checkpoint out"
install -d -o "$user" -g "$user" -m 0755 "$run/data"
as_user sluice-mkdata --out "$run/data/d.h5" --samples 16384 --shape 256 --labels 10 --files 4 >/dev/null
echo "dataset: $(ls "$run/data" | tr '\n' ' ')($(du -sh "$run/data" | cut -f1))"
jobid=$(submit train)
cat "$run/train-$jobid.out"
# Stage-out runs in the epilog, just after the job ends.
for _ in $(seq 1 150); do [[ -e $run/runs/$jobid/checkpoint.bin ]] && break; sleep 0.2; done
echo "checkpoint staged out: $(ls -l "$run/runs/$jobid/checkpoint.bin" 2>/dev/null || echo "(not there: see $state/log/slurmd-node1.log)")"

echo
echo "== 3. sluice-report job $jobid"
as_user sluice-report job "$jobid" --dir "$state/telemetry"
echo
echo "== sluice-report cluster (every job of the last two hours, by user)"
as_user sluice-report cluster --dir "$state/telemetry" --since now-2h -q

down="$repo/site/devcluster/sluice-devcluster down"
[[ $state == /var/lib/sluice-devcluster ]] || down="SLUICE_DEVCLUSTER_DIR=$state $down"
echo
echo "The dev cluster is still up: 'source $state/env.sh' to use it, '$down' to stop it,"
echo "'$down --purge' to also remove $state (configuration, logs, the installed sluice)."
