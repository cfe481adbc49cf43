#!/usr/bin/env bash
# sluice-bench reader [ARGS...]: runs the reader benchmark binary (sluice-bench-reader).
# Finds it in $SLUICE_BENCH_READER, then build*/jobrt/ beside this repo, then PATH.
# ARGS: see `sluice-bench-reader --help` (e.g. --samples 65536 --json). Needs root to drop
# the page cache for the cold figures; otherwise prints warm ones only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${SLUICE_BENCH_READER:-}
if [[ -z $bin ]]; then
  for cand in "$root"/build/jobrt/sluice-bench-reader "$root"/build-*/jobrt/sluice-bench-reader; do
    [[ -x $cand ]] && { bin=$cand; break; }
  done
fi
[[ -z $bin ]] && bin=$(command -v sluice-bench-reader || true)
if [[ -z $bin ]]; then
  echo "sluice-bench reader: sluice-bench-reader not found (build it: cmake --build build --target sluice-bench-reader)" >&2
  exit 2
fi
exec "$bin" "$@"
