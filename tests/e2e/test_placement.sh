#!/usr/bin/env bash
# End-to-end placement on the embedded dev cluster (Lassen topology, 2 nodes x 4 GPUs).
# Every task checks its own CUDA_VISIBLE_DEVICES, UCX_NET_DEVICES, CPU affinity and
# placement record against a placement worked out by hand (expected/*.json).
# Usage: test_placement.sh WHEREAMI WORKDIR   (SLURM_CONF and the Open MPI variables from
# the cluster's env.sh must be in the environment, see site/devcluster/sluice-devcluster)
set -uo pipefail
whereami=$(realpath -e "${1:?usage: test_placement.sh WHEREAMI WORKDIR}") || exit 1
work=${2:?usage: test_placement.sh WHEREAMI WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && chmod 1777 "$work"
# The expected placements, where the jobs can read them (not the source tree: it may be in a
# 0700 home or under /tmp, which the nodes replace with their own).
rm -rf "$work/expected" && cp -r "$here/expected" "$work/expected" && chmod -R a+rX "$work/expected"
expected=$work/expected
cd "$work" || exit 1
passed=0 failed=0

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# No job id in the queue now that was not in BEFORE (sorted ids). Jobs may leave the queue
# meanwhile, so counting them is not enough.
no_new_job() { [[ -z $(comm -13 <(printf '%s\n' "$1") <(squeue -h -o %i | sort)) ]]; }

# Waits for a batch job and prints its state; sbatch --wait has no timeout of its own.
run_batch() {  # run_batch NAME SBATCH_ARGS... -- SCRIPT_BODY
  local name=$1; shift
  local args=()
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  shift
  printf '#!/bin/bash\n%s\n' "$1" >"$name.sbatch"
  timeout 180 sbatch --wait --parsable -J "$name" -o "$name.out" -e "$name.err" "${args[@]}" "$name.sbatch" >"$name.jobid" 2>"$name.submit"
}

nproc_real=$(nproc)

# 0. slurmd wrote the node's topology snapshot at start (steps read it, not the XML).
state=$(dirname "$SLURM_CONF")
check "slurmd wrote the topology snapshot in run_dir" compgen -G "$state/plugin-run/topology-*.snapshot"

# 1. sbatch -N2 --ntasks-per-node=4 --gres=gpu:4 --gpu-topo=pack, srun steps inherit it.
run_batch pack -N2 --ntasks-per-node=4 --gres=gpu:4 --gpu-topo=pack -- \
  "srun --mpi=pmix $whereami --expect $expected/lassen-pack-4.json"
rc=$?
cat pack.out pack.err 2>/dev/null | sed 's/^/  | /'
check "sbatch --gpu-topo=pack job succeeds (rc $rc)" test "$rc" -eq 0
check "8 ranks passed the pack placement check" grep -q "placement check: 8 of 8 ranks passed" pack.out
check "both nodes took part" bash -c "grep -q 'node node1 task' pack.out && grep -q 'node node2 task' pack.out"
if [[ $nproc_real -eq 2 ]]; then
  # Dev-cluster emulation maps Lassen's PUs onto the 2 real CPUs in blocks: socket 0 -> CPU 0.
  check "emulated binding: tasks on socket 0 bound to CPU 0, socket 1 to CPU 1" bash -c \
    "[[ \$(grep -c 'gpus \[[01]\].*bound 0)' pack.out) -eq 4 && \$(grep -c 'gpus \[[23]\].*bound 1)' pack.out) -eq 4 ]]"
fi

# 2. An srun step may choose its own policy inside the allocation.
run_batch spread -N2 --ntasks-per-node=4 --gres=gpu:4 --gpu-topo=pack -- \
  "srun --gpu-topo=spread --mpi=pmix $whereami --expect $expected/lassen-spread-4.json"
rc=$?
cat spread.out spread.err 2>/dev/null | sed 's/^/  | /'
check "srun --gpu-topo=spread step inside a pack job (rc $rc)" grep -q "placement check: 8 of 8 ranks passed" spread.out

# 3. srun straight from the login shell (local context), no batch script.
out=$(timeout 120 srun -N2 --ntasks-per-node=4 --gres=gpu:4 --gpu-topo=pack --mpi=pmix "$whereami" \
        --expect "$expected/lassen-pack-4.json" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "srun -N2 --gpu-topo=pack (rc $rc)" grep -q "placement check: 8 of 8 ranks passed" <<<"$out"

# 4. Without --gpu-topo the site default (none here) leaves Slurm's placement alone.
out=$(timeout 120 srun -N1 -n1 --gres=gpu:4 --mpi=pmix "$whereami" 2>&1)
echo "$out" | sed 's/^/  | /'
check "no --gpu-topo: task not placed by sluice" grep -q "not placed by sluice" <<<"$out"

# 5. A bad value is refused at submission, before the job is queued, naming the option.
before=$(squeue -h -o %i | sort)
out=$(sbatch --gpu-topo=bogus --wrap true 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "sbatch --gpu-topo=bogus exits non-zero (rc $rc)" test "$rc" -ne 0
check "the message names the option and the valid values" grep -q "invalid --gpu-topo value 'bogus' (valid: pack, spread, none)" <<<"$out"
check "no job was queued" no_new_job "$before"
out=$(srun --gpu-topo=sideways true 2>&1)
rc=$?
check "srun --gpu-topo=sideways refused too (rc $rc)" bash -c "[[ $rc -ne 0 ]] && grep -q \"invalid --gpu-topo value 'sideways'\" <<<\"\$0\"" "$out"

# 5b. salloc: the option is refused the same way, and a valid one reaches the srun inside.
out=$(timeout 60 salloc -N1 --gpu-topo=bogus true 2>&1)
rc=$?
check "salloc --gpu-topo=bogus refused (rc $rc)" \
  bash -c "[[ $rc -ne 0 ]] && grep -q \"invalid --gpu-topo value 'bogus'\" <<<\"\$0\"" "$out"
out=$(timeout 120 salloc -N2 --ntasks-per-node=4 --gres=gpu:4 --gpu-topo=pack \
        srun --mpi=pmix "$whereami" --expect "$expected/lassen-pack-4.json" 2>&1)
rc=$?
echo "$out" | grep -E "placement check|FAIL" | sed 's/^/  | /'
check "salloc --gpu-topo=pack: the srun inside is placed (rc $rc)" grep -q "placement check: 8 of 8 ranks passed" <<<"$out"

# 6. Jobs of an unprivileged user are placed the same way.
if id sluice >/dev/null 2>&1; then
  out=$(cd "$work" && timeout 120 runuser -u sluice -- env SLURM_CONF="$SLURM_CONF" \
        srun --quiet -N1 -n4 --gres=gpu:4 --gpu-topo=pack bash -c 'echo "$SLURM_LOCALID $CUDA_VISIBLE_DEVICES $GPU_DEVICE_ORDINAL $UCX_NET_DEVICES $NCCL_IB_HCA"' 2>&1 | sort)
  echo "$out" | sed 's/^/  | /'
  check "user 'sluice' gets one GPU and its NIC per task" \
    test "$out" = $'0 0 0 mlx5_0:1 =mlx5_0:1\n1 1 1 mlx5_1:1 =mlx5_1:1\n2 2 2 mlx5_2:1 =mlx5_2:1\n3 3 3 mlx5_3:1 =mlx5_3:1'
fi

# 7. plugstack.conf variants; slurmstepd and srun read the file at every step.
plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
saved_plugstack=$(mktemp)
cp "$plugstack" "$saved_plugstack"
trap 'cp "$saved_plugstack" "$plugstack"; rm -f "$saved_plugstack"' EXIT
with_plugstack() {  # with_plugstack SED_EXPR: rewrites the plugin line
  sed -E "$1" "$saved_plugstack" >"$plugstack"
}

# 7a. A real cluster (no emulation) whose topology is another machine's: Lassen's CPUs are
#     8-87,96-175, this machine's are not. required: the step fails with the reason.
with_plugstack 's/cpu_emulation=block/cpu_emulation=none/'
out=$(timeout 120 srun -N1 -n2 --gres=gpu:2 --gpu-topo=pack bash -c 'echo TASK-RAN' 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "required + topology of another machine: step fails (rc $rc), no task ran" \
  bash -c "[[ $rc -ne 0 ]] && ! grep -q TASK-RAN <<<\"\$0\"" "$out"
check "the reason is said once per step, not once per task" \
  test "$(grep -c 'cannot place this step' <<<"$out")" -eq 1
check "the message says the topology does not describe this node" \
  grep -q "does not describe this node: Slurm lets this step use CPUs" <<<"$out"

# 7b. The same with optional: the job runs with Slurm's own binding, and says why.
with_plugstack 's/cpu_emulation=block/cpu_emulation=none/; s/^required /optional /'
out=$(timeout 120 srun -N1 -n1 --gres=gpu:2 --gpu-topo=pack bash -c 'echo "placement=${SLUICE_PLACEMENT:-unset}"' 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "optional + topology of another machine: the task runs unplaced (rc $rc)" \
  bash -c "[[ $rc -eq 0 ]] && grep -q 'placement=unset' <<<\"\$0\" && grep -q 'does not describe this node' <<<\"\$0\"" "$out"

# 7c. An unknown plugstack.conf argument is an error at load, naming it.
with_plugstack 's/^(required [^ ]+)/\1 colour=blue/'
out=$(timeout 60 srun -N1 -n1 true 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "unknown plugstack argument: srun fails (rc $rc) naming it" \
  bash -c "[[ $rc -ne 0 ]] && grep -q \"unknown plugstack.conf argument 'colour=blue'\" <<<\"\$0\"" "$out"
cp "$saved_plugstack" "$plugstack"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
