#!/usr/bin/env bash
# Every tool of the repository answers --help in a fresh clone, before anything is set up:
# no build, no packages checked, no dev cluster, not as root (an unprivileged user runs it).
# Each must exit 0, print a manual naming itself on stdout, nothing on stderr, and leave the
# clone as it was.
# Usage: test_help.sh SOURCE_DIR WORK_DIR   (SOURCE_DIR a git repository; skips, 77, if not)
set -uo pipefail
src=${1:?usage: test_help.sh SOURCE_DIR WORK_DIR}; work=${2:?usage: test_help.sh SOURCE_DIR WORK_DIR}
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIP: $src is not a git repository"; exit 77; }
rm -rf "$work" && mkdir -p "$work" && chmod 0755 "$work"
git clone -q "$src" "$work/clone" || { echo "FAIL: git clone $src"; exit 1; }
chmod -R a+rX "$work/clone"
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }
as_nobody() { if [[ $(id -u) -eq 0 ]]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi; }

# TOOL ARGS... : the tool's path in the repo and what to pass it.
while read -r tool name args; do
  [[ -n $tool ]] || continue
  # shellcheck disable=SC2086 # args are words
  (cd "$work/clone" && as_nobody env -i PATH=/usr/bin:/bin HOME=/ timeout 20 "./$tool" $args) \
    >"$work/out" 2>"$work/err"
  rc=$?
  if [[ $rc -ne 0 || -s $work/err ]]; then sed 's/^/  | /' "$work/out" "$work/err"; fi
  check "$tool $args: exits 0 (rc $rc), stdout names $name and --help, stderr empty" \
    bash -c "[[ $rc -eq 0 && ! -s '$work/err' ]] && grep -q -- '$name' '$work/out' && grep -q -- '--help' '$work/out'"
done <<'TOOLS'
site/demo.sh demo.sh --help
site/run-tests.sh run-tests.sh --help
site/install-deps.sh install-deps.sh --help
site/devcluster/sluice-devcluster sluice-devcluster --help
site/devcluster/sluice-devcluster sluice-devcluster -h
site/devcluster/sluice-devcluster sluice-devcluster help
site/devcluster/sluice-devcluster sluice-devcluster up --help
site/devcluster/sluice-devcluster sluice-devcluster down --help
site/devcluster/sluice-devcluster sluice-devcluster status --help
TOOLS

# Every executable script the repository ships under site/ is in the list above.
while IFS= read -r f; do
  check "$f is tested above" grep -q "^$f " "$0"
done < <(cd "$work/clone" && find site -type f -perm -u+x | sort)
left=$(git -C "$work/clone" status --porcelain --ignored)
check "the clone is unchanged (no build dir, no state)" test -z "$left"
[[ -z $left ]] || echo "$left" | sed 's/^/  | /'
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
