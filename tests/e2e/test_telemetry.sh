#!/usr/bin/env bash
# Telemetry end to end on the dev cluster, as the unprivileged user: a 4-rank job on 2 nodes
# leaves its job file (written by rank 0) and one record per node (written by the plugin as
# root at start and end); `sluice-report job` shows both; a killed job's checkpoint is
# readable; the Prometheus files exist while a job runs and are gone after it, also when it
# was killed.
# Usage: test_telemetry.sh TELEMETRY_JOB SLUICE_REPORT TELEMETRY_DIR PROMETHEUS_DIR WORKDIR
set -uo pipefail
usage="usage: test_telemetry.sh TELEMETRY_JOB SLUICE_REPORT TELEMETRY_DIR PROMETHEUS_DIR WORKDIR"
prog=$(realpath -e "${1:?$usage}") || exit 1
report=$(realpath -e "${2:?$usage}") || exit 1
tdir=${3:?$usage} pdir=${4:?$usage} work=${5:?$usage}
rm -rf "$work" && mkdir -p "$work" && chmod 1777 "$work"
cd "$work" || exit 1
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
wait_gone() { for _ in $(seq 1 150); do [[ -z $(squeue -h -j "$1" 2>/dev/null) ]] && return 0; sleep 0.2; done; return 1; }
# The epilog runs after the job leaves squeue's running list: wait for its record's end.
wait_end() { for _ in $(seq 1 150); do
  grep -qs '"end_unix_ms":[0-9]' "$tdir/records/job-$1.node1.json" && grep -qs '"end_unix_ms":[0-9]' "$tdir/records/job-$1.node2.json" && return 0
  sleep 0.2; done; return 1; }

# --- a job that runs to its end ---------------------------------------------------------
jid=$(runuser -u sluice -- sbatch --parsable -N2 --ntasks-per-node=2 --gres=gpu:1 -A e2e-acct -o "$work/done.out" \
  --wrap "SLUICE_TELEMETRY_CHECKPOINT=1 SLUICE_SAMPLE_INTERVAL=0.2 srun --mpi=pmix $prog 30 40") || exit 1
wait_gone "$jid"; wait_end "$jid"
sed 's/^/  | /' "$work/done.out"
check "the job ran its steps and wrote its file" grep -q "^ok: " "$work/done.out"
check "the job file exists, written by the job's user" test "$(stat -c %U "$tdir/job-$jid.h5" 2>/dev/null)" = sluice
for n in node1 node2; do
  rec=$tdir/records/job-$jid.$n.json
  check "$n: the plugin wrote a root-owned record" test "$(stat -c %U "$rec" 2>/dev/null)" = root
  check "$n: the record names user, account, GPUs and the exit" \
    test "$(json "$rec" 'd["user"], d["account"], len(d["gpus"]), d["exit_code"], d["end_unix_ms"] > d["start_unix_ms"]')" = "('sluice', 'e2e-acct', 1, 0, True)"
done
check "the records directory is root's, not writable by users" test "$(stat -c '%U %a' "$tdir/records")" = "root 755"
runuser -u sluice -- "$report" job "$jid" --dir "$tdir" --format json >"$work/done.json" 2>"$work/done.err"
check "sluice-report job reads it as the user (rc $?)" test -s "$work/done.json"
cat "$work/done.err"
check "the report: user, account, state and GPUs from the record" \
  test "$(json "$work/done.json" 'd["user"], d["account"], d["slurm_state"], d["gpus"], d["complete"]')" = "('sluice', 'e2e-acct', 'COMPLETED', 2, True)"
check "the report: 4 ranks on 2 nodes, 120 steps" test "$(json "$work/done.json" 'd["ranks"], d["nodes"], d["steps"]')" = "(4, 2, 120)"
check "the report: the data-wait share (a quarter of each step) is there" \
  json "$work/done.json" '0.15 < d["data_wait_fraction"] < 0.35' | grep -q True
check "the report: the input-bound rule fired" json "$work/done.json" '[n["rule"] for n in d["notes"]]' | grep -q input_bound
"$report" job "$jid" --dir "$tdir" | sed 's/^/  | /' | head -20
check "no Prometheus file of the finished job is left" test -z "$(ls -A "$pdir" | grep "job_${jid}_")"

# --- a job that is killed ---------------------------------------------------------------
jid=$(runuser -u sluice -- sbatch --parsable -N2 --ntasks-per-node=1 -o "$work/killed.out" \
  --wrap "SLUICE_TELEMETRY_CHECKPOINT=1 SLUICE_SAMPLE_INTERVAL=0.2 srun --mpi=pmix $prog 0 40") || exit 1
for _ in $(seq 1 300); do [[ -e $tdir/job-$jid.h5 ]] && break; sleep 0.2; done
check "the running job has checkpointed" test -e "$tdir/job-$jid.h5"
for _ in $(seq 1 50); do [[ $(ls "$pdir" | grep -c "^sluice_job_${jid}_rank.*\.prom$") -ge 2 ]] && break; sleep 0.2; done
check "its Prometheus files exist while it runs (one per rank)" test "$(ls "$pdir" | grep -c "^sluice_job_${jid}_rank.*\.prom$")" -eq 2
check "its record says it is running" test "$(json "$tdir/records/job-$jid.node1.json" 'd["end_unix_ms"]')" = None
sleep 1.5
scancel -s KILL "$jid"
wait_gone "$jid"; wait_end "$jid"
check "the killed job's Prometheus files were removed by the epilog" test -z "$(ls -A "$pdir" | grep "job_${jid}_")"
runuser -u sluice -- "$report" job "$jid" --dir "$tdir" --format json >"$work/killed.json" 2>"$work/killed.err"
cat "$work/killed.err"
check "the killed job's checkpoint is readable: incomplete, with steps" \
  test "$(json "$work/killed.json" 'd["complete"], d["steps"] > 0, d["ranks"], d["slurm_state"]')" = "(False, True, 2, 'ENDED_EARLY')"
"$report" job "$jid" --dir "$tdir" | sed 's/^/  | /' | head -6

echo "telemetry e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
