#!/usr/bin/env bash
# Runs test_fault under mpirun (with recovery, so survivors are not killed by mpirun) inside
# `timeout`, and checks that every survivor reported the expected error, naming the victim,
# within the limit, and (PROGRAM_ARGS --destroy 1) that destroying the broken communicator
# took under 2 s. Usage: check_fault.sh MPIRUN_PREFIX... -- NP MODE VICTIM ALGO LIMIT_MS PROGRAM [PROGRAM_ARGS...]
set -uo pipefail
mpirun=()
while [[ $1 != -- ]]; do mpirun+=("$1"); shift; done
shift
np=$1 mode=$2 victim=$3 algo=$4 limit_ms=$5 prog=$6
shift 6
want_destroy=0
[[ " $* " == *" --destroy 1 "* ]] && want_destroy=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
# The transport and UCX's settings, when the test sets them, reach every rank.
fwd=()
for v in SLUICE_COLL_TRANSPORT UCX_TLS; do [[ -n ${!v:-} ]] && fwd+=(-x "$v"); done
SLUICE_COLL_TIMEOUT_MS=2000 timeout -s KILL 60 "${mpirun[@]}" --enable-recovery -x SLUICE_COLL_TIMEOUT_MS "${fwd[@]}" -np "$np" \
  "$prog" --"$mode" "$victim" --algo "$algo" "$@" >"$out" 2>&1
rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$out" | grep -v '^\s*$' | grep -Ev 'PMIX ERROR|^-+$' | head -40
if [[ $rc == 137 ]]; then echo "FAIL: the job hung (killed by timeout after 60 s)"; exit 1; fi
expect=PeerDied
[[ $mode == stall ]] && expect=PeerTimeout
[[ $mode == mismatch ]] && expect=MismatchError
fail=0
for ((r = 0; r < np; r++)); do
  [[ $mode != mismatch && $r == "$victim" ]] && continue
  line=$(grep -E "^RESULT rank=$r " "$out" | head -1)
  if [[ -z $line ]]; then echo "FAIL: rank $r reported nothing"; fail=1; continue; fi
  err=$(sed -E 's/.* error=([^ ]*).*/\1/' <<<"$line")
  peer=$(sed -E 's/.* peer=([^ ]*).*/\1/' <<<"$line")
  ms=$(sed -E 's/.* ms=([0-9]*).*/\1/' <<<"$line")
  refused=$(sed -E 's/.* refused=([0-9]).*/\1/' <<<"$line")
  if [[ $err != "$expect" ]]; then echo "FAIL: rank $r got $err, expected $expect"; fail=1; fi
  if [[ $mode != mismatch && $peer != "$victim" ]]; then echo "FAIL: rank $r named rank $peer, not $victim"; fail=1; fi
  if (( ms > limit_ms )); then echo "FAIL: rank $r took $ms ms (limit $limit_ms)"; fail=1; fi
  if [[ $refused != 1 ]]; then echo "FAIL: rank $r: the broken communicator did not refuse the next call"; fail=1; fi
  destroy_ms=$(sed -nE 's/.* destroy_ms=([0-9]+).*/\1/p' <<<"$line")
  if [[ $want_destroy == 1 && -z $destroy_ms ]]; then echo "FAIL: rank $r did not destroy the communicator"; fail=1; fi
  if [[ -n $destroy_ms ]] && (( destroy_ms > 2000 )); then
    echo "FAIL: rank $r took $destroy_ms ms to destroy the communicator"; fail=1
  fi
done
echo "job took ${elapsed} ms"
exit $fail
