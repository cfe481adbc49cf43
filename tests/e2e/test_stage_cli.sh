#!/usr/bin/env bash
# sluice-stage as a user meets it: copies, resumes, exit statuses.
# Usage: test_stage_cli.sh SLUICE_STAGE WORK_DIR
set -uo pipefail
stage=${1:?usage: test_stage_cli.sh SLUICE_STAGE WORK_DIR}
work=${2:?usage: test_stage_cli.sh SLUICE_STAGE WORK_DIR}
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }

rm -rf "$work" && mkdir -p "$work/src/sub/deeper"
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 30); do head -c $((i * 1000)) /dev/urandom >"$work/src/sub/f$i"; done
head -c 3000000 /dev/urandom >"$work/src/sub/deeper/big"
echo hello >"$work/src/top.txt"

"$stage" in "$work/src" "$work/bb/data" --jobs 3 --chunk-size 1MiB >"$work/out.txt" 2>"$work/err.txt"
rc=$?
check "in: exit 0 (rc $rc)" test $rc -eq 0
check "in: destination mirrors the source" diff -r -x .sluice-manifest.json "$work/src" "$work/bb/data"
check "in: summary line" grep -q 'copied 32 ' "$work/out.txt"
check "in: a manifest" test -s "$work/bb/data/.sluice-manifest.json"

"$stage" in "$work/src" "$work/bb/data" --verify >"$work/out.txt" 2>&1
check "in again: everything skipped (rc $?)" grep -q 'copied 0 (0 B), skipped 32 unchanged' "$work/out.txt"

"$stage" out "$work/bb/data/sub" "$work/results" -q >/dev/null 2>&1
rc=$?
check "out: exit 0 (rc $rc)" test $rc -eq 0
check "out: copied" cmp -s "$work/src/sub/deeper/big" "$work/results/deeper/big"

ln -s /etc/passwd "$work/src/sub/link"
"$stage" in "$work/src" "$work/bb/data2" >/dev/null 2>"$work/err.txt"
rc=$?
check "symlink in the source: exit 1 naming it (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q '$work/src/sub/link' '$work/err.txt'"
rm "$work/src/sub/link"

"$stage" in "$work/missing" "$work/bb/x" >/dev/null 2>"$work/err.txt"
rc=$?
check "missing source: exit 1 naming it (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q '$work/missing' '$work/err.txt'"

"$stage" in "$work/src" >/dev/null 2>&1
check "usage error: exit 2 (rc $?)" test $? -eq 2
"$stage" in "$work/src" "$work/bb/y" --jobs 0 >/dev/null 2>&1
check "bad --jobs: exit 2 (rc $?)" test $? -eq 2
"$stage" --help >"$work/help.txt" 2>&1
rc=$?
check "--help: exit 0 with EXAMPLES and EXIT STATUS (rc $rc)" bash -c "[[ $rc -eq 0 ]] && grep -q EXAMPLES '$work/help.txt' && grep -q 'EXIT STATUS' '$work/help.txt'"
"$stage" in --help >"$work/help.txt" 2>&1
check "in --help documents the cache and shard options" \
  bash -c "grep -q -- '--cache-dir' '$work/help.txt' && grep -q -- '--cache-max' '$work/help.txt' && grep -q -- '--shard' '$work/help.txt'"

# --- The node cache -------------------------------------------------------------------
cache=$work/bb/.cache/uid
"$stage" in "$work/src" "$work/bb/job1" --cache-dir "$cache" --cache-max 1GiB -q >"$work/out.txt" 2>&1
rc=$?
check "cache, first stage: exit 0, 0 from cache (rc $rc)" bash -c "[[ $rc -eq 0 ]] && grep -q 'copied 32 .*, 0 from cache' '$work/out.txt'"
"$stage" in "$work/src" "$work/bb/job2" --cache-dir "$cache" -q >"$work/out.txt" 2>&1
rc=$?
check "cache, second stage: everything linked, nothing copied (rc $rc)" \
  bash -c "[[ $rc -eq 0 ]] && grep -q 'copied 0 (0 B).*, 32 from cache' '$work/out.txt'"
check "cache, second stage: mirrors the source" diff -r -x .sluice-manifest.json "$work/src" "$work/bb/job2"
check "cache, second stage: same inode as the first job's copy" \
  test "$(stat -c %i "$work/bb/job1/sub/f7")" = "$(stat -c %i "$work/bb/job2/sub/f7")"
echo changed >"$work/src/top.txt"
"$stage" in "$work/src" "$work/bb/job3" --cache-dir "$cache" -q >"$work/out.txt" 2>&1
check "cache: a changed source is copied, not served stale" \
  bash -c "grep -q 'copied 1 .*, 31 from cache' '$work/out.txt' && cmp -s '$work/src/top.txt' '$work/bb/job3/top.txt'"
"$stage" cache stats "$cache" >"$work/out.txt" 2>&1
rc=$?
check "cache stats: 33 entries (rc $rc)" bash -c "[[ $rc -eq 0 ]] && grep -q ': 33 entries' '$work/out.txt'"
"$stage" cache stats "$cache" --json >"$work/out.txt" 2>&1
check "cache stats --json" grep -q '"entries":33' "$work/out.txt"
"$stage" cache evict "$cache" --max 1M >"$work/out.txt" 2>&1
rc=$?
bytes=$("$stage" cache stats "$cache" --json | sed 's/.*"bytes":\([0-9]*\).*/\1/')
check "cache evict --max 1M: at most 1 MiB left (rc $rc, $bytes bytes)" bash -c "[[ $rc -eq 0 && $bytes -le 1048576 ]]"
check "cache evict: the jobs keep their data" cmp -s "$work/src/sub/deeper/big" "$work/bb/job1/sub/deeper/big"
"$stage" cache evict "$cache" >/dev/null 2>&1
check "cache evict without --max: exit 2 (rc $?)" test $? -eq 2
"$stage" in "$work/src" "$work/bb/y" --cache-dir "$cache" --cache-max 12X >/dev/null 2>"$work/err.txt"
rc=$?
check "bad --cache-max: exit 2 naming it (rc $rc)" bash -c "[[ $rc -eq 2 ]] && grep -q -- '--cache-max' '$work/err.txt'"
"$stage" cache stats "$work/nocache" >/dev/null 2>&1
check "cache stats of a missing directory: exit 1 (rc $?)" test $? -eq 1

# --- Shards ------------------------------------------------------------------------------
"$stage" in "$work/src" "$work/bb/s0" --shard 0/2 -q >"$work/out0.txt" 2>&1 &&
  "$stage" in "$work/src" "$work/bb/s1" --shard 1/2 -q >"$work/out1.txt" 2>&1
rc=$?
check "shard 0/2 and 1/2: exit 0 (rc $rc)" test $rc -eq 0
n0=$(find "$work/bb/s0" -type f ! -name .sluice-manifest.json | wc -l)
n1=$(find "$work/bb/s1" -type f ! -name .sluice-manifest.json | wc -l)
check "shards: the two shares make the tree ($n0 + $n1 = 32), both non-empty" bash -c "[[ $((n0 + n1)) -eq 32 && $n0 -gt 0 && $n1 -gt 0 ]]"
check "shards: summary counts the other shard's files" grep -q "$n1 left to other shards (shard 0/2)" "$work/out0.txt"
mkdir -p "$work/union" && cp -a "$work/bb/s0/." "$work/bb/s1/." "$work/union/" 2>/dev/null
check "shards: the union mirrors the source" diff -r -x .sluice-manifest.json "$work/src" "$work/union"
for bad in 2/2 1 a/2 1/0 -1/2; do
  "$stage" in "$work/src" "$work/bb/z" --shard "$bad" >/dev/null 2>"$work/err.txt"
  rc=$?
  check "bad --shard $bad: exit 2 (rc $rc)" bash -c "[[ $rc -eq 2 ]] && grep -q -- '--shard' '$work/err.txt'"
done

# --- status --------------------------------------------------------------------------------
mkdir -p "$work/bbroot/.status"
cat >"$work/bbroot/.status/job_7.json" <<'JSON'
{"version":1,"job_id":7,"node":"node1","uid":1000,"bb_dir":"/var/tmp/sluice/job_7","mode":"async",
 "phase":"staging-in","bytes_done":1073741824,"bytes_total":4294967296,"files_done":120,"files_total":20001,
 "seconds":4.0,"updated_unix":1700000000,"error":"","stager_pid":4242,"stager_start":0,"stage_out_failed":false}
JSON
"$stage" status 7 --bb-root "$work/bbroot" >"$work/out.txt" 2>&1
rc=$?
check "status 7: exit 0 (rc $rc)" test $rc -eq 0
check "status 7: phase and mode" bash -c "grep -q 'phase.*staging-in' '$work/out.txt' && grep -q 'mode.*async' '$work/out.txt'"
check "status 7: bytes and files done of total" \
  bash -c "grep -q '1.0 GiB of 4.0 GiB (25%)' '$work/out.txt' && grep -q '120 of 20001' '$work/out.txt'"
check "status 7: rate" grep -q 'rate.*268 MB/s' "$work/out.txt"
SLUICE_BB_ROOT=$work/bbroot "$stage" status 7 --json >"$work/out.txt" 2>&1
check "status 7 --json, bb root from SLUICE_BB_ROOT" grep -q '"job_id": 7' "$work/out.txt"
SLUICE_BB=$work/bbroot/job_7 "$stage" status 7 >/dev/null 2>&1
check "status 7, bb root from the parent of SLUICE_BB (rc $?)" test $? -eq 0
sed -e 's/"staging-in"/"failed"/' -e 's/"error":""/"error":"copy failed: disk full"/' \
  -e 's/"stage_out_failed":false/"stage_out_failed":true/' "$work/bbroot/.status/job_7.json" >"$work/bbroot/.status/job_9.json"
"$stage" status 9 --bb-root "$work/bbroot" >"$work/out.txt" 2>&1
check "status 9: error and kept results" \
  bash -c "grep -q 'error.*disk full' '$work/out.txt' && grep -q 'results.*kept in /var/tmp/sluice/job_7' '$work/out.txt'"
"$stage" status 8 --bb-root "$work/bbroot" >/dev/null 2>"$work/err.txt"
rc=$?
check "status 8: exit 3, no status for job 8 (rc $rc)" bash -c "[[ $rc -eq 3 ]] && grep -q 'no staging status for job 8' '$work/err.txt'"
for bad in abc 0 -3 7x; do
  "$stage" status "$bad" --bb-root "$work/bbroot" >/dev/null 2>&1
  rc=$?
  check "status $bad: exit 2 (rc $rc)" test $rc -eq 2
done
echo '{"version":1}' >"$work/bbroot/.status/job_10.json"
"$stage" status 10 --bb-root "$work/bbroot" >/dev/null 2>&1
check "status of a damaged record: exit 1 (rc $?)" test $? -eq 1

# Two nodes staging out into one DST have the same burst-buffer paths: labelled by node,
# the second node's different file of the same name is a conflict, never a replacement.
mkdir -p "$work/nodeout" && echo "from node1" >"$work/nodeout/result.txt"
"$stage" out "$work/nodeout" "$work/merged" --source-label node1 -q >/dev/null 2>&1
echo "from node2, longer" >"$work/nodeout/result.txt"
echo "only node2" >"$work/nodeout/extra.txt"
"$stage" out "$work/nodeout" "$work/merged" --source-label node2 -q >/dev/null 2>"$work/err.txt"
rc=$?
check "out from another node: a clashing file is refused (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q 'result.txt' '$work/err.txt'"
check "out from another node: the first node's file is intact" grep -qx "from node1" "$work/merged/result.txt"
"$stage" out "$work/nodeout" "$work/merged" --source-label node1 -q >/dev/null 2>&1
check "out again from the same node: its changed file is replaced (rc $?)" grep -qx "from node2, longer" "$work/merged/result.txt"
"$stage" out "$work/missing-results" "$work/merged" --if-exists >"$work/out.txt" 2>&1
check "out --if-exists: a missing SRC is nothing to copy (rc $?)" grep -q "does not exist, nothing to copy" "$work/out.txt"
flock "$work/merged" sleep 2 &  # another stage holding DST
holder=$!
sleep 0.5
"$stage" out "$work/nodeout" "$work/merged" --source-label node1 -q >/dev/null 2>"$work/err.txt"
rc=$?
check "out while DST is locked: fails at once naming the lock (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q 'lock' '$work/err.txt'"
"$stage" out "$work/nodeout" "$work/merged" --source-label node1 --wait-lock 20 -q >/dev/null 2>"$work/err.txt"
rc=$?
check "out --wait-lock: waits for the other stage, then copies (rc $rc)" test $rc -eq 0
wait "$holder"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
