#!/usr/bin/env bash
# End-to-end staging on the embedded dev cluster: sbatch --stage-in/--stage-out on 2 nodes,
# shard and async modes, the node cache, a cancelled job, a failed stage-out, bad values,
# and the privilege test (an unprivileged user's job cannot stage a root-only file).
# Jobs run as the unprivileged user `sluice`, as a researcher's would.
# Usage: test_staging.sh SLUICE_STAGE WORKDIR   (SLURM_CONF from the cluster's env.sh)
set -uo pipefail
stage_tool=$(realpath -e "${1:?usage: test_staging.sh SLUICE_STAGE WORKDIR}") || exit 1
work=${2:?usage: test_staging.sh SLUICE_STAGE WORKDIR}
state=$(dirname "$SLURM_CONF")
user=sluice
rm -rf "$work" && mkdir -p "$work" && chmod 1777 "$work"
cd "$work" || exit 1
passed=0 failed=0

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# No job id in the queue now that was not in BEFORE (sorted ids). Jobs may leave the queue
# meanwhile, so counting them is not enough.
no_new_job() { [[ -z $(comm -13 <(printf '%s\n' "$1") <(squeue -h -o %i | sort)) ]]; }
as_user() { runuser -u "$user" -- "$@"; }
bb_of() { echo "$state/$1/tmp/sluice-bb"; }  # node N's bb_root, seen from outside
status_file() { echo "$(bb_of "$1")/.status/job_$2.json"; }
phase_of() { sed -n 's/.*"phase": *"\([a-z-]*\)".*/\1/p' "$(status_file "$1" "$2")" 2>/dev/null; }

# Runs a batch job as the user and waits for it (sbatch --wait has no timeout of its own).
run_batch() {  # run_batch NAME SBATCH_ARGS... -- SCRIPT_BODY ; job id in NAME.jobid
  local name=$1; shift
  local args=()
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  shift
  printf '#!/bin/bash\n%s\n' "$1" >"$name.sbatch"
  chmod 644 "$name.sbatch"
  as_user timeout 300 sbatch --wait --parsable -J "$name" -o "$work/$name.out" -e "$work/$name.err" "${args[@]}" \
    "$name.sbatch" >"$name.jobid" 2>"$name.submit"
}
show() { cat "$1.out" "$1.err" "$1.submit" 2>/dev/null | sed 's/^/  | /'; }

# --- Test data: readable by the user, on the "shared file system" --------------------------
data=$work/data
mkdir -p "$data/ds/sub" "$data/results"
for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom >"$data/ds/f$i.bin"; done
for i in 1 2 3; do echo "label $i" >"$data/ds/sub/l$i.txt"; done
head -c $((3 << 20)) /dev/urandom >"$data/ds/big.bin"
head -c 65536 /dev/urandom >"$data/model.pt"
mkdir -p "$data/many"
for i in $(seq 1 12000); do echo "sample $i" >"$data/many/s$i.txt"; done
echo "root only" >"$data/secret" && chmod 600 "$data/secret"
mkdir -p "$data/readonly-results" && chmod 755 "$data/readonly-results"  # root's: the user cannot write
chmod -R a+rX "$data/ds" "$data/many" "$data/model.pt" && chmod 755 "$data" && chmod 1777 "$data/results"
src_sums=$(cd "$data/ds" && find . -type f -exec sha256sum {} + | sort -k2)

# 0. A job that runs out of time still stages out. Slurm's smallest limit is a minute, so it
# is submitted first and checked last, while the other steps run.
timeout_job=$(as_user sbatch --parsable --time=1 -w node2 -o "$work/timeout.out" \
  --stage-out="out:$data/results/timed-out" --wrap 'mkdir -p $SLUICE_BB/out && echo before the limit > $SLUICE_BB/out/state.txt && sleep 600')

# 1. Sync stage-in on 2 nodes, stage-out from both, burst buffer removed afterwards.
run_batch sync -N2 --stage-in="$data/ds" --stage-in="$data/model.pt:model/weights.pt" \
  --stage-out="out:$data/results/%j/%N" --stage-out="shared:$data/results/merged-%j" -- '
srun -N2 --ntasks-per-node=1 bash -c "
  stat -c \"%U %a\" \$SLUICE_BB > '"$work"'/owner.\$SLURMD_NODENAME
  (cd \$SLUICE_BB/ds && find . -type f ! -name .sluice-manifest.json -exec sha256sum {} + | sort -k2) > '"$work"'/sums.\$SLURMD_NODENAME
  cmp -s \$SLUICE_BB/model/weights.pt '"$data/model.pt"' && echo model-ok > '"$work"'/model.\$SLURMD_NODENAME
  mkdir -p \$SLUICE_BB/out \$SLUICE_BB/shared && echo result of \$SLURMD_NODENAME > \$SLUICE_BB/out/result.txt
  echo part of \$SLURMD_NODENAME > \$SLUICE_BB/shared/part.\$SLURMD_NODENAME"'
rc=$?
show sync
job=$(cat sync.jobid)
check "sync job with --stage-in/--stage-out succeeds (rc $rc)" test "$rc" -eq 0
for n in node1 node2; do
  check "$n: \$SLUICE_BB belongs to the user, mode 0700" grep -qx "$user 700" "owner.$n"
  check "$n: every staged file matches its source (sha256)" test "$(cat "sums.$n" 2>/dev/null)" == "$src_sums"
  check "$n: a file staged under another name (model/weights.pt)" test -s "model.$n"
  check "$n: results staged out to DST/%j/%N" grep -qx "result of $n" "$data/results/$job/$n/result.txt"
  check "$n: its part reached the DST shared by both nodes" grep -qx "part of $n" "$data/results/merged-$job/part.$n"
  check "$n: burst buffer removed after stage-out" test ! -e "$(bb_of $n)/job_$job"
  check "$n: status record says done" test "$(phase_of $n "$job")" == done
done
out=$("$stage_tool" status "$job" --bb-root "$(bb_of node2)" 2>&1)
echo "$out" | sed 's/^/  | /'
check "sluice-stage status JOBID shows the node's record" grep -qi "done" <<<"$out"
check "results belong to the user" test "$(stat -c %U "$data/results/$job/node1/result.txt")" == "$user"

# 2. A second job staging the same data on the same node: linked from the node cache.
run_batch cached -N1 -w node1 --stage-in="$data/ds" -- '
stat -c %h $SLUICE_BB/ds/big.bin > '"$work"'/links
cmp $SLUICE_BB/ds/big.bin '"$data/ds/big.bin"' && echo same > '"$work"'/same'
rc=$?
show cached
check "second job on node1 succeeds (rc $rc)" test "$rc" -eq 0
check "its copy is a hard link into the node cache (link count >= 2)" test "$(cat links 2>/dev/null || echo 0)" -ge 2
check "and has the source's bytes" test -s same
check "node1's cache holds the dataset" bash -c "find '$(bb_of node1)/.cache' -type f | grep -q ."

# 3. Shard mode: each node gets its share; together they hold every file exactly once.
run_batch shard -N2 --stage-in="$data/ds:part:shard" -- '
srun -N2 --ntasks-per-node=1 bash -c "cd \$SLUICE_BB/part && find . -type f ! -name .sluice-manifest.json | sort > '"$work"'/share.\$SLURMD_NODENAME"'
rc=$?
show shard
check "shard job succeeds (rc $rc)" test "$rc" -eq 0
all=$(cd "$data/ds" && find . -type f | sort)
check "both nodes got a non-empty share" test -s share.node1 -a -s share.node2
check "the shares are disjoint" test -z "$(comm -12 share.node1 share.node2 2>/dev/null)"
check "the shares together are the whole dataset" test "$(sort share.node1 share.node2 2>/dev/null)" == "$all"

# 4. Async mode: the task starts while stage-in runs, then sees every file arrive.
run_batch async -N1 --stage-in="$data/many" --stage-in="$data/ds" --stage-mode=async -- '
sed -n "s/.*\"phase\": *\"\([a-z-]*\)\".*/\1/p" $SLUICE_STAGE_STATUS > '"$work"'/async.first
for i in $(seq 1 600); do grep -q "\"phase\": \"ready\"" $SLUICE_STAGE_STATUS && break; sleep 0.1; done
sed -n "s/.*\"phase\": *\"\([a-z-]*\)\".*/\1/p" $SLUICE_STAGE_STATUS > '"$work"'/async.last
find $SLUICE_BB/many -name "s*.txt" | wc -l > '"$work"'/async.count'
rc=$?
show async
check "async job succeeds (rc $rc)" test "$rc" -eq 0
check "the task started while stage-in was running" grep -qx staging-in async.first
check "stage-in then finished (phase ready)" grep -qx ready async.last
check "all 12000 files arrived" grep -qx 12000 async.count

# 5. A cancelled job still stages out.
jid=$(as_user sbatch --parsable -o "$work/cancel.out" --stage-out="out:$data/results/cancelled" --wrap \
  'mkdir -p $SLUICE_BB/out && seq 1 1000 > $SLUICE_BB/out/partial.txt && sleep 300')
for _ in $(seq 1 100); do [[ $(squeue -h -j "$jid" -o %T 2>/dev/null) == RUNNING ]] && break; sleep 0.2; done
sleep 2
scancel "$jid"
for _ in $(seq 1 150); do [[ $(phase_of node1 "$jid") == done ]] && break; sleep 0.2; done
check "scancel'ed job: results staged out" test "$(wc -l <"$data/results/cancelled/partial.txt" 2>/dev/null)" == 1000

# 6. A stage-out that fails keeps the files and says so.
run_batch keep -N1 -w node1 --stage-out="out:$data/readonly-results/x" -- 'mkdir -p $SLUICE_BB/out && echo precious > $SLUICE_BB/out/model.pt'
job=$(cat keep.jobid)
for _ in $(seq 1 100); do [[ $(phase_of node1 "$job") == failed ]] && break; sleep 0.2; done
check "failed stage-out: the results stay in the burst buffer" grep -qx precious "$(bb_of node1)/job_$job/out/model.pt"
check "failed stage-out: recorded in the status" grep -q '"stage_out_failed": true' "$(status_file node1 "$job")"
check "failed stage-out: in the slurmd log, naming the job" grep -q "sluice: job $job: stage-out of out:" "$state/log/slurmd-node1.log"
rm -rf "$(bb_of node1)/job_$job"

# 7. The privilege test: the user's job cannot stage a root-only file, and says why.
run_batch secret -N1 --stage-in="$data/secret" -- 'echo SHOULD-NOT-RUN'
rc=$?
show secret
job=$(cat secret.jobid)
check "job staging a root-only file fails (rc $rc)" test "$rc" -ne 0
check "the job's stderr names the file and the reason" grep -q "stage-in of $data/secret.*Permission denied" secret.err
check "the script did not run" bash -c "! grep -q SHOULD-NOT-RUN secret.out"
check "no copy of the file exists on the node" bash -c "! find '$(bb_of node1)' '$(bb_of node2)' -name secret 2>/dev/null | grep -q ."

# 8. Bad values are refused at submission, naming the option; nothing is queued.
before=$(squeue -h -o %i | sort)
for bad_arg in "--stage-in=relative/path" "--stage-in=$data/ds:../escape" "--stage-in=$data/ds:/abs" \
               "--stage-out=/abs:/x" "--stage-out=out" "--stage-mode=later" "--stage-in=@/nonexistent/list"; do
  out=$(as_user sbatch "$bad_arg" --wrap true 2>&1)
  rc=$?
  check "sbatch $bad_arg refused (rc $rc): $(head -1 <<<"$out")" test "$rc" -ne 0
done
out=$(as_user srun --stage-in="$data/ds:a/../../b" true 2>&1)
check "srun refuses a bad --stage-in too" grep -q "sluice: --stage-in: stage spec" <<<"$out"
check "no job was queued" no_new_job "$before"

# 0, checked: Slurm ended the job at its time limit, and the epilog staged out.
for _ in $(seq 1 600); do
  [[ $(phase_of node2 "$timeout_job") == done || $(phase_of node2 "$timeout_job") == failed ]] && break
  sleep 0.5
done
# The status says done before the epilog has exited; slurmctld shows COMPLETING until then.
for _ in $(seq 1 120); do
  state=$(scontrol show job "$timeout_job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  [[ $state != COMPLETING ]] && break
  sleep 0.5
done
check "the --time=1 job ended by its time limit (JobState=$state)" test "$state" == TIMEOUT
check "timed-out job: results staged out" grep -qx "before the limit" "$data/results/timed-out/state.txt"

echo "staging e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
