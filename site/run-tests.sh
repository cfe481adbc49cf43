#!/usr/bin/env bash
# Sets up everything sluice needs on a fresh Debian 12 machine and runs the whole test suite:
# packages, a -Werror build, unit tests, the install/examples test, and the end-to-end tests
# on the embedded dev cluster (started and stopped by ctest). Run as root.
#   site/run-tests.sh [extra ctest arguments, e.g. -L unit]
# Environment: SLUICE_BUILD_DIR (default <repo>/build).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$repo/build}

if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests.sh: run as root: it installs packages and starts munge, slurmctld and slurmd" >&2
  exit 1
fi
"$repo/site/install-deps.sh"
cmake -S "$repo" -B "$build" -DSLUICE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure "$@"
