#!/usr/bin/env bash
# The dev cluster's lifecycle, checked from outside the script: two 'up's in a row are
# harmless, 'down' leaves no process, mount, socket or listening port, 'up' after 'down' works.
# Usage: test_cluster_lifecycle.sh DEVCLUSTER STATE_DIR [up args...]   (as root)
set -uo pipefail
devcluster=${1:?usage: test_cluster_lifecycle.sh DEVCLUSTER STATE_DIR [up args...]}
state=${2:?usage: test_cluster_lifecycle.sh DEVCLUSTER STATE_DIR [up args...]}
shift 2
export SLUICE_DEVCLUSTER_DIR=$state
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }

# Processes of this cluster: daemons name the state dir on their command line; job steps
# and tasks live in a slurmd's mount namespace, whose private /tmp is a bind of STATE/nodeI/tmp.
leftovers() {
  local pid
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    if grep -qs -- "$state" "/proc/$pid/cmdline" 2>/dev/null || grep -qs -- "$state/node" "/proc/$pid/mountinfo" 2>/dev/null; then
      echo "pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    fi
  done
  grep -s -- "$state" /proc/self/mountinfo | sed 's/^/mount: /'
  ss -xlpn 2>/dev/null | grep -- "$state" | sed 's/^/socket: /'
  ss -ltnH '( sport = :16817 or sport = :17001 or sport = :17002 )' 2>/dev/null | sed 's/^/port: /'
}

"$devcluster" up "$@" >up1.log 2>&1
check "up starts the cluster (rc $?)" "$devcluster" status
"$devcluster" up "$@" >up2.log 2>&1
rc=$?
check "a second up is harmless (rc $rc, says already up)" bash -c "[[ $rc -eq 0 ]] && grep -q 'already up' up2.log"
check "still up after the second up" "$devcluster" status

"$devcluster" down >down1.log 2>&1
check "down (rc $?)" test $? -eq 0
left=$(leftovers)
[[ -n $left ]] && echo "$left" | sed 's/^/  | /'
check "down left no process, mount, socket or port" test -z "$left"
"$devcluster" status >/dev/null 2>&1
check "status says down (exit 3)" test $? -eq 3

"$devcluster" up "$@" >up3.log 2>&1
check "up after down works (rc $?)" "$devcluster" status
"$devcluster" down >down2.log 2>&1
left=$(leftovers)
check "and down again leaves nothing" test -z "$left"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
