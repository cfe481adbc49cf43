#!/usr/bin/env bash
# The training example end to end on the dev cluster, as the unprivileged user and through
# examples/train.sbatch (every sluice flag: --gpu-topo, --stage-in, --stage-out,
# --stage-mode): 4 ranks on 2 nodes read the staged dataset, train, and stage their
# checkpoint out. Checks the staged files on both nodes, per-task placement, a falling loss,
# the test accuracy, identical weights on every rank, the staged-out checkpoint, the job's
# telemetry file and report; then the resume (a job stopped half way and a job resuming from
# its staged-out checkpoint end with the uninterrupted job's weights) and the UCX transport
# (the same weights as MPI).
# Usage: test_train.sh BIN_DIR SLUICE_MKDATA SLUICE_REPORT TRAIN_SBATCH TELEMETRY_DIR WORKDIR
#   BIN_DIR holds sluice-train-mlp (built against the installed package).
set -uo pipefail
usage="usage: test_train.sh BIN_DIR SLUICE_MKDATA SLUICE_REPORT TRAIN_SBATCH TELEMETRY_DIR WORKDIR"
bindir=$(realpath -e "${1:?$usage}") || exit 1
mkdata=$(realpath -e "${2:?$usage}") || exit 1
report=$(realpath -e "${3:?$usage}") || exit 1
sbatch_src=$(realpath -e "${4:?$usage}") || exit 1
tdir=${5:?$usage} work=${6:?$usage}
[[ -x $bindir/sluice-train-mlp ]] || { echo "no sluice-train-mlp in $bindir"; exit 1; }
rm -rf "$work" && mkdir -p "$work" && chmod 1777 "$work"
cd "$work" || exit 1
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }
json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$@"; }
wait_gone() { for _ in $(seq 1 1500); do [[ -z $(squeue -h -j "$1" 2>/dev/null) ]] && return 0; sleep 0.2; done; return 1; }
# Stage-out runs in the epilog, after the job has left squeue: wait for both nodes' records' end.
wait_end() { for _ in $(seq 1 300); do
  grep -qs '"end_unix_ms":[0-9]' "$tdir/records/job-$1.node1.json" && grep -qs '"end_unix_ms":[0-9]' "$tdir/records/job-$1.node2.json" && return 0
  sleep 0.2; done; return 1; }
result() { sed -n 's/^result: //p' "$work/train-$1.out"; }
field() { if [[ -n $1 ]]; then json "$1" "$2"; else echo "(no result)"; fi; }
# The job script a user would copy, with its paths pointed at this test's directory.
sed "s|/var/tmp/sluice-demo|$work|g" "$sbatch_src" >"$work/train.sbatch"
submit() {  # ENV... -> job id; waits for the job and its epilog
  local jid
  jid=$(runuser -u sluice -- env PATH="$bindir:$PATH" "$@" sbatch --parsable -o "$work/train-%j.out" "$work/train.sbatch") || return 1
  wait_gone "$jid"; wait_end "$jid"
  echo "$jid"
}

# The dataset, as the user: 8192 samples in 4 files (3 to train, 1 held out).
mkdir -p "$work/data" && chown sluice: "$work/data"
runuser -u sluice -- "$mkdata" --out "$work/data/d.h5" --samples 8192 --shape 256 --labels 10 --files 4 >/dev/null ||
  { echo "FAIL: sluice-mkdata"; exit 1; }

# --- the full run --------------------------------------------------------------------------
full=$(submit EPOCHS=4) || { echo "FAIL: sbatch"; exit 1; }
sed 's/^/  | /' "$work/train-$full.out"
r=$(result "$full")
check "the job trained and printed its result" test -n "$r"
check "the MPI job used MPI between the nodes" grep -q "transport mpi between nodes" "$work/train-$full.out"
check "4 ranks on 2 nodes" test "$(field "$r" 'd["ranks"], d["nodes"]')" = "(4, 2)"
check "the loss falls epoch after epoch" \
  test "$(field "$r" 'len(d["losses"]) == 4 and all(b < a for a, b in zip(d["losses"], d["losses"][1:]))')" = True
check "test accuracy >= 95 % on the held-out file" test "$(field "$r" 'd["test_accuracy"] >= 0.95')" = True
check "every rank ends with identical weights" test "$(field "$r" 'd["identical"]')" = True
placement=$(grep '^placement: ' "$work/train-$full.out")
for n in node1 node2; do
  check "$n: both its ranks read the staged copies in their burst buffer" \
    test "$(grep -c " on $n: .*; reads /tmp/sluice-bb/job_$full/data$" <<<"$placement")" -eq 2
  check "$n: the stage-in is in the job record" \
    test "$(field "$(cat "$tdir/records/job-$full.$n.json")" 'd["stage_in_bytes"] > 6_000_000')" = True
  gpus=$(sed -n "s/.* on $n: task [0-9] gpus \([0-9,]*\) .*(pack).*/\1/p" <<<"$placement" | sort)
  check "$n: two tasks placed by pack, each on its own GPU ($(echo $gpus))" \
    test "$(wc -l <<<"$gpus")" -eq 2 -a "$(sort -u <<<"$gpus" | wc -l)" -eq 2 -a -n "$(head -1 <<<"$gpus")"
done
ckpt=$work/runs/$full/checkpoint.bin
check "the checkpoint was staged out, owned by the user" test "$(stat -c %U "$ckpt" 2>/dev/null)" = sluice
check "the job's telemetry file exists" test -s "$tdir/job-$full.h5"
rep=$(runuser -u sluice -- "$report" job "$full" --dir "$tdir" --format json)
check "sluice-report job: 4 ranks, 4 x 192 steps, a data-wait share, COMPLETED" test "$(field "$rep" \
  'd["ranks"] == 4 and d["steps"] == 4 * 192 and d["data_wait_fraction"] is not None and d["slurm_state"] == "COMPLETED"')" = True
"$report" job "$full" --dir "$tdir" | sed 's/^/  | /' | head -30
# The admin's view: the cluster report (the user's own index, in their home) counts the job.
cl=$(runuser -u sluice -- "$report" cluster --dir "$tdir" --since now-1h --format json)
check "sluice-report cluster: the user's group has the job and its allocated GPU-hours" test "$(field "$cl" \
  '[g["jobs"] >= 1 and g["gpu_hours_allocated"] > 0 for g in d["groups"] if g["name"] == "sluice"] == [True]')" = True

# --- resume: stop at step 100, resume from the staged-out checkpoint ---------------------
half=$(submit EPOCHS=4 STOP_AFTER=100)
rh=$(result "$half")
check "the stopped job ended at step 100" test "$(field "$rh" 'd["steps"]')" = 100
resumed=$(submit EPOCHS=4 RESUME="$work/runs/$half/checkpoint.bin")
rr=$(result "$resumed")
grep -E '^(resumed|epoch)' "$work/train-$resumed.out" | sed 's/^/  | /'
check "the resumed job continued exactly: the uninterrupted job's weights" \
  test "$(field "$rr" 'd["weights_fnv1a64"]')" = "$(field "$r" 'd["weights_fnv1a64"]')"

# --- the UCX transport gives the same weights (deterministic mode) -----------------------
# The placement names the emulated topology's mlx5 ports in UCX_NET_DEVICES; this machine has
# none, so the UCX run is pointed at loopback (a real cluster has the NICs the placement names).
sed -i 's|^srun --mpi=pmix sluice-train-mlp|srun --mpi=pmix env UCX_NET_DEVICES=lo sluice-train-mlp|' "$work/train.sbatch"
grep -q 'env UCX_NET_DEVICES=lo' "$work/train.sbatch" || echo "FAIL: train.sbatch has no 'srun --mpi=pmix sluice-train-mlp' line"
ucx=$(submit EPOCHS=4 SLUICE_COLL_TRANSPORT=ucx)
ru=$(result "$ucx")
check "the UCX job used UCX between the nodes" grep -q "transport ucx between nodes" "$work/train-$ucx.out"
check "UCX transport: the same final weights as MPI" \
  test "$(field "$ru" 'd["weights_fnv1a64"]')" = "$(field "$r" 'd["weights_fnv1a64"]')"

echo "train e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
