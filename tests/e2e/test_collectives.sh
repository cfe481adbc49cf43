#!/usr/bin/env bash
# Allreduce across the dev cluster's two emulated nodes (srun --mpi=pmix), so the
# hierarchical path runs with ranks on different nodes: node membership comes from the
# placement record (--gpu-topo), as on a real cluster.
# Usage: test_collectives.sh TEST_DIR   (coll_test_allreduce, coll_test_async inside;
# SLURM_CONF and the Open MPI variables from the cluster's env.sh)
set -uo pipefail
dir=$(realpath -e "${1:?usage: test_collectives.sh TEST_DIR}") || exit 1
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }
cd /var/tmp || exit 1

for t in allreduce async; do
  out=$(timeout 300 srun --mpi=pmix -N2 --ntasks-per-node=2 --gres=gpu:2 --gpu-topo=pack "$dir/coll_test_$t" 2>&1)
  rc=$?
  echo "$out" | sed 's/^/  | /'
  check "$t across 2 nodes x 2 ranks (rc $rc)" test "$rc" -eq 0
  check "$t: 4 ranks saw 2 nodes, no failure" grep -q "4 ranks (2 nodes.*0 failures" <<<"$out"
done

echo "collectives e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
