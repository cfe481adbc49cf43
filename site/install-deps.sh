#!/usr/bin/env bash
# Installs every Debian 12 package that sluice's build, tests, benchmarks and the
# embedded dev cluster need. Idempotent: packages already present are left alone.
# Usage (as root): site/install-deps.sh
set -euo pipefail
case ${1:-} in
  -h | --help)
    echo "usage: site/install-deps.sh [--help]     (as root)"
    echo "Installs with apt-get the Debian 12 packages sluice's build, tests and dev cluster need;"
    echo "packages already installed are left alone."
    exit 0 ;;
  "") ;;
  *) echo "install-deps.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git
  # Slurm, munge, PMIx (the dev cluster and the SPANK headers)
  slurm-wlm slurmd slurmctld slurm-client libslurm-dev munge libmunge-dev libpmix-dev
  # MPI, UCX, HDF5, hwloc
  openmpi-bin libopenmpi-dev libucx-dev ucx-utils libhdf5-dev hdf5-tools
  libhwloc-dev hwloc-nox
  # libraries preferred over hand-written code
  libboost-test-dev libxxhash-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libsqlite3-dev libbenchmark-dev
  # dev cluster plumbing: unshare/mount (util-linux), ss (iproute2), pgrep (procps)
  util-linux iproute2 procps
  # tests/bench/stage.sh compares sluice-stage with rsync -a
  rsync
  # monitor.report_html_chromium renders sluice-report's HTML page headless
  chromium
  # the API reference from the headers (cmake/SluiceDocs.cmake: the docs target)
  doxygen
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: missing packages: ${missing[*]}; run as root to install them (apt-get)" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start slurmd/slurmctld/munge system services: the dev
# cluster starts its own daemons with its own configuration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps.sh: done"
