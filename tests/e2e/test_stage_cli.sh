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

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
