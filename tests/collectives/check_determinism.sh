#!/usr/bin/env bash
# Two runs of test_determinism must print identical hashes; the second changes the shm step
# and the ring segment size (neither may change any result bit). Usage:
# check_determinism.sh MPIRUN_PREFIX... -- NP PROGRAM [WRAPPER ARGS...]
set -euo pipefail
mpirun=()
while [[ $1 != -- ]]; do mpirun+=("$1"); shift; done
shift
np=$1; shift
a=$(mktemp) b=$(mktemp)
trap 'rm -f "$a" "$b"' EXIT
timeout 120 "${mpirun[@]}" -np "$np" "$@" >"$a"
SLUICE_COLL_SHM_STEP=65536 SLUICE_COLL_RING_SEGMENT=4096 timeout 120 "${mpirun[@]}" \
  -x SLUICE_COLL_SHM_STEP -x SLUICE_COLL_RING_SEGMENT -np "$np" "$@" >"$b"
lines=$(wc -l <"$a")
if [[ $lines -lt 8 ]]; then echo "FAIL: only $lines results"; cat "$a"; exit 1; fi
if ! diff "$a" "$b"; then echo "FAIL: the two runs differ"; exit 1; fi
echo "$lines results bit-identical across two runs"
