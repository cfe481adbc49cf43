#!/usr/bin/env bash
# Sets up everything sluice needs on a fresh Debian 12 machine and runs the whole test suite:
# packages, a -Werror build, unit tests, the install/examples test, and the end-to-end tests
# on the embedded dev cluster (started and stopped by ctest). Run as root; --help for more.
set -euo pipefail
umask 022 # the cluster tests' jobs run as another user and read the build tree

usage() {
  cat <<'EOF2'
usage: site/run-tests.sh [--help] [ctest arguments, e.g. -L unit]     (as root)

Installs the packages, builds with -Werror and runs ctest. The end-to-end tests run jobs as
the unprivileged user `sluice` on the dev cluster, whose state lives in BUILD/devcluster, so
the build dir must be one every user can enter and not under /tmp (each emulated node has a
private /tmp). A clone where <repo>/build is not such a place (under /tmp, root's 0700 home,
a path with blanks) builds in /var/lib/sluice-build/<name>-<hash of the clone's path>
instead, and says so before building.

Environment:
  SLUICE_BUILD_DIR   build dir (default <repo>/build, or the fallback above)
EOF2
}
case ${1:-} in -h | --help) usage; exit 0 ;; esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=site/lib/paths.sh
source "$repo/site/lib/paths.sh"
die() { echo "run-tests.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages and starts munge, slurmctld and slurmd"
if [[ -n ${SLUICE_BUILD_DIR:-} ]]; then
  build=$SLUICE_BUILD_DIR
  why=$(why_unreachable "$build" dir)
  [[ -z $why ]] || die "build dir $build cannot hold the cluster tests: $why; set SLUICE_BUILD_DIR to a directory every user can enter outside /tmp, or unset it"
else
  build=$repo/build
  why=$(why_unreachable "$build" dir)
  if [[ -n $why ]]; then
    real=$(readlink -m "$repo")
    build=/var/lib/sluice-build/$(basename "$real" | tr -c 'A-Za-z0-9._\n-' _)-$(sha1sum <<<"$real" | cut -c1-8)
    echo "run-tests.sh: building in $build, not in $repo/build: $why, and the cluster tests' jobs run as another user (SLUICE_BUILD_DIR chooses another)"
    mkdir -p "$build" && chmod 0755 /var/lib/sluice-build "$build"
  fi
fi

"$repo/site/install-deps.sh"
cmake -S "$repo" -B "$build" -DSLUICE_WERROR=ON -DSLUICE_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure "$@"
