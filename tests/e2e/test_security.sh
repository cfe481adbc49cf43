#!/usr/bin/env bash
# The plugin against hostile users, on the embedded dev cluster. Two unprivileged users
# (sluice and sluice2) try what a review found possible on earlier code:
#   1. rewrite the job's staging status so root's epilog signals another process group,
#      or saves another job's status with the attacker's burst buffer;
#   2. drain nodes with a staging request larger than slurmd can pass to the prolog;
#   3. keep an async stage-in running (stopped, then resumed) after the job ended;
#   4. be served a cached copy of a file they may no longer read;
#   5. hold a node: a stopped sync stage-in, a flock held on a stage-out destination;
#   7. put terminal escapes into the slurmd log and `sluice-stage status`.
# (6 and 8, the reports, are unit tests: tests/monitor/test_job_file.cpp, test_job_index.cpp.)
# Usage: test_security.sh SLUICE_STAGE WORKDIR   (SLURM_CONF from the cluster's env.sh)
set -uo pipefail
stage_tool=$(realpath -e "${1:?usage: test_security.sh SLUICE_STAGE WORKDIR}") || exit 1
work=${2:?usage: test_security.sh SLUICE_STAGE WORKDIR}
state=$(dirname "$SLURM_CONF")
victim=sluice attacker=sluice2
for u in "$victim" "$attacker"; do
  id -u "$u" >/dev/null 2>&1 || { echo "FAIL: user $u missing (sluice-devcluster up creates it)"; exit 1; }
done
rm -rf "$work" && mkdir -p "$work" && chmod 1777 "$work"
cd "$work" || exit 1
passed=0 failed=0

ok() { echo "PASS: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
as() { local u=$1; shift; runuser -u "$u" -- env SLURM_CONF="$SLURM_CONF" "$@"; }
bb_of() { echo "$state/$1/tmp/sluice-bb"; }  # node N's bb_root, seen from outside
status_file() { echo "$(bb_of "$1")/.status/job_$2.json"; }
phase_of() { sed -n 's/.*"phase": *"\([a-z-]*\)".*/\1/p' "$(status_file "$1" "$2")" 2>/dev/null; }
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_state() {  # wait_state JOB SECONDS STATE...: until the job is in one of them
  local job=$1 secs=$2 s; shift 2
  for ((i = 0; i < secs * 5; i++)); do
    s=$(job_state "$job")
    for want in "$@"; do [[ $s == "$want" ]] && return 0; done
    sleep 0.2
  done
  return 1
}
# Gone from the queue or finished, and no longer COMPLETING (the epilog has returned).
wait_done() {
  local job=$1 secs=$2 s
  for ((i = 0; i < secs * 5; i++)); do
    s=$(job_state "$job")
    [[ -z $s || ($s != PENDING && $s != CONFIGURING && $s != RUNNING && $s != COMPLETING) ]] && return 0
    sleep 0.2
  done
  return 1
}
drained_nodes() { sinfo -h -N -o '%N %t' | awk '$2 ~ /drain|drng|down/ {print $1}' | sort -u | tr '\n' ' '; }
stagers_of() { pgrep -u "$1" -x sluice-stage | tr '\n' ' '; }
show() { sed 's/^/  | /' "$@" 2>/dev/null; }

plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
saved_plugstack=$(mktemp)
cp "$plugstack" "$saved_plugstack"
victim_pid=
cleanup() {
  cp "$saved_plugstack" "$plugstack"
  rm -f "$saved_plugstack"
  [[ -n $victim_pid ]] && kill -KILL -- "-$victim_pid" 2>/dev/null
  pkill -CONT -u "$victim" -x sluice-stage 2>/dev/null
  pkill -KILL -u "$attacker" -x flock 2>/dev/null
  scancel -u "$victim" 2>/dev/null; scancel -u "$attacker" 2>/dev/null
  gpasswd -d "$victim" sluice-sec >/dev/null 2>&1; groupdel sluice-sec 2>/dev/null
  for n in $(drained_nodes); do scontrol update nodename="$n" state=resume 2>/dev/null; done
}
trap cleanup EXIT
# Extra plugin arguments for the steps that need them (slurmd's prolog helper, srun and
# slurmstepd read plugstack.conf at every job).
with_plugin_args() { sed -E "s|^((required\|optional) [^ ]+sluice_spank[^ ]*\.so)|\1 $1|" "$saved_plugstack" >"$plugstack"; }

data=$work/data
mkdir -p "$data/many" "$data/small"
for i in $(seq 1 20000); do echo "sample $i" >"$data/many/s$i.txt"; done
echo "small" >"$data/small/a.txt"
chmod -R a+rX "$data" && chmod 755 "$data"

# --- 1. Root never acts on the user's status record ---------------------------------------
# A root process group the attacker wants killed: root's epilog must never signal it.
setsid sleep 900 </dev/null >/dev/null 2>&1 &
sleep 0.3
victim_pid=$(pgrep -n -x -f 'sleep 900')
victim_start=$(awk '{print $22}' "/proc/$victim_pid/stat")
# The victim's job V holds a burst buffer on node1 and runs two steps; the attacker's job A
# rewrites its own status to name V, an attacker-owned directory and the root process group.
printf '#!/bin/bash\nsrun -n1 true\nwhile [[ ! -e %s/go ]]; do sleep 0.2; done\nsrun -n1 bash -c %q\n' "$work" \
  "echo \$SLUICE_BB > $work/victim-bb" >victim.sbatch
chmod 644 victim.sbatch
vjob=$(as "$victim" sbatch --parsable -w node1 -n1 -o "$work/victim.out" --stage-in="$data/small" victim.sbatch)
wait_state "$vjob" 60 RUNNING
attacker_uid=$(id -u "$attacker")
cat >attack.sbatch <<EOF
#!/bin/bash
# Writes, over its own status file (the user owned it), a record the old epilog would trust.
f=\$SLUICE_STAGE_STATUS
evil=/tmp/evil-\$SLURM_JOB_ID
mkdir -p \$evil && chmod 777 \$evil
chmod u+w "\$f" 2>/dev/null
printf '{"version":1,"job_id":$vjob,"node":"node1","uid":$attacker_uid,"bb_dir":"%s","mode":"sync","phase":"ready","bytes_done":0,"bytes_total":0,"files_done":0,"files_total":0,"seconds":0,"updated_unix":0,"error":"","stager_pid":$victim_pid,"stager_start":$victim_start,"stage_out_failed":false}\\n' "\$evil" >"\$f" 2>/dev/null
cat "\$f" >$work/attack-status 2>&1
EOF
chmod 644 attack.sbatch
ajob=$(as "$attacker" sbatch --parsable -w node1 -n1 -o "$work/attack.out" --stage-in="$data/small" attack.sbatch)
wait_done "$ajob" 90
show attack.out
check "1: the attacker's job ran and tried to rewrite its status file" test -e attack-status
check "1: root's epilog did not signal the process group named in the user's status" kill -0 "$victim_pid"
touch "$work/go"
wait_done "$vjob" 90
check "1: the victim's next step still gets its own burst buffer" \
  test "$(cat victim-bb 2>/dev/null)" == "/tmp/sluice-bb/job_$vjob"
check "1: the victim's status still names its own burst buffer" \
  grep -q "\"bb_dir\": \"/tmp/sluice-bb/job_$vjob\"" "$(status_file node1 "$vjob")"
kill -KILL -- "-$victim_pid" 2>/dev/null; victim_pid=

# --- 2. A staging request too large for slurmd is refused where the user types it ----------
before_drained=$(drained_nodes)
long=$(printf 'p%.0s' $(seq 1 200))
dst="/tmp/out/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long/$long"  # ~3.6 KB
specs=()
for i in $(seq 1 40); do specs+=("--stage-out=o$i:$dst/$i"); done  # ~146 KB of specs
out=$(as "$victim" sbatch --parsable -N2 -o /dev/null "${specs[@]}" --wrap true 2>&1)
rc=$?
echo "$out" | tail -3 | sed 's/^/  | /'
check "2: sbatch refuses a 146 KB staging request (rc $rc)" test "$rc" -ne 0
check "2: the message gives the limit" grep -q "staging request.*KiB" <<<"$out"
jid=$(grep -Eo '^[0-9]+$' <<<"$out")
[[ -n $jid ]] && { wait_done "$jid" 60; scancel "$jid" 2>/dev/null; }
# A manifest of many specs within the spec count and the manifest's own 1 MiB bound, but not
# the request's byte bound.
short=${long:0:100}
for i in $(seq 1 4096); do echo "$data/small/a.txt:dst/$short/$i"; done >"$work/manifest.txt"
chmod 644 manifest.txt
out=$(as "$victim" sbatch --parsable -N2 -o /dev/null --stage-in=@"$work/manifest.txt" --wrap true 2>&1)
rc=$?
echo "$out" | tail -2 | sed 's/^/  | /'
check "2: sbatch refuses a 4096-spec manifest over the byte bound (rc $rc)" test "$rc" -ne 0
jid=$(grep -Eo '^[0-9]+$' <<<"$out")
[[ -n $jid ]] && { wait_done "$jid" 60; scancel "$jid" 2>/dev/null; }
# The largest request allowed runs on both nodes. Its size is what the plugin says it allows.
limit=$(sed -n 's/.*at most \([0-9]*\) bytes.*/\1/p' <<<"$out" | head -1)
check "2: the refusal says the limit in bytes ($limit)" test -n "$limit"
limit=${limit:-65536}
specs=() total=0 i=0
while :; do  # each spec's canonical line is "SRC:DST\n"
  i=$((i + 1)); spec="o$i:$dst/$i"
  ((total + ${#spec} + 1 > limit)) && break
  specs+=("--stage-out=$spec"); total=$((total + ${#spec} + 1))
done
# The last spec fills the request to the byte: "o$i:" + an absolute path of PAD bytes + "\n",
# in components of at most 200 bytes (NAME_MAX is 255).
pad=$((limit - total - ${#i} - 3))
if ((pad >= 2)); then
  tail=
  while ((${#tail} < pad)); do
    n=$((pad - ${#tail} - 1)); ((n > 200)) && n=200; ((pad - ${#tail} - 1 - n == 1)) && n=$((n - 1))
    tail+=/$(printf 'q%.0s' $(seq 1 "$n"))
  done
  specs+=("--stage-out=o$i:$tail"); total=$((total + ${#i} + 3 + ${#tail}))
fi
check "2: the request built is exactly the limit ($total of $limit bytes)" test "$total" -eq "$limit"
jid=$(as "$victim" sbatch --parsable -N2 -o "$work/largest.out" "${specs[@]}" --wrap 'srun -N2 true; echo LARGEST-RAN' 2>"$work/largest.err")
rc=$?
wait_done "$jid" 120
show largest.err
check "2: the largest allowed request was accepted (rc $rc)" test "$rc" -eq 0
check "2: and its job ran on both nodes" grep -q LARGEST-RAN largest.out
check "2: its final state is COMPLETED ($(job_state "$jid"))" test "$(job_state "$jid")" == COMPLETED
out=$(as "$victim" sbatch --parsable -N2 -o /dev/null "${specs[@]}" --stage-out=x:/y --wrap true 2>&1)
rc=$?
check "2: one spec more is refused (rc $rc)" test "$rc" -ne 0
jid=$(grep -Eo '^[0-9]+$' <<<"$out")
[[ -n $jid ]] && { wait_done "$jid" 60; scancel "$jid" 2>/dev/null; }
check "2: no node was drained (drained now: '$(drained_nodes)', before: '$before_drained')" \
  test "$(drained_nodes)" == "$before_drained"

# --- 3. An async stage-in is stopped at job end, even one its user stopped -----------------
ajob=$(as "$victim" sbatch --parsable -w node1 -n1 -o "$work/async.out" --stage-mode=async --stage-in="$data/many" \
  --wrap 'for i in $(seq 1 200); do pkill -STOP -u $USER -x sluice-stage && break; sleep 0.05; done; echo stopped > '"$work"'/async-stopped; sleep 600')
wait_state "$ajob" 60 RUNNING
for _ in $(seq 1 100); do [[ -e async-stopped ]] && break; sleep 0.2; done
check "3: the job stopped its own async stager (SIGSTOP)" test -n "$(stagers_of "$victim")"
scancel "$ajob"
wait_done "$ajob" 90
sleep 1
left=$(stagers_of "$victim")
check "3: no sluice-stage of the job is left after its epilog (left: '$left')" test -z "$left"
phase=$(phase_of node1 "$ajob")
pkill -CONT -u "$victim" -x sluice-stage 2>/dev/null
sleep 3
check "3: the finished job's status is not rewritten afterwards ($phase, then $(phase_of node1 "$ajob"))" \
  test "$(phase_of node1 "$ajob")" == "$phase"

# --- 4. A cache hit is served only if the user can read the source now ---------------------
groupadd sluice-sec && usermod -aG sluice-sec "$victim"
mkdir -p "$data/group" && echo "for the group only" >"$data/group/g.txt"
# The directory stays listable: only the file is the group's, so the stager finds it and
# must refuse the cached copy on its own.
chgrp -R sluice-sec "$data/group" && chmod 755 "$data/group" && chmod 640 "$data/group/g.txt"
jid=$(as "$victim" sbatch --parsable --wait -w node1 -n1 -o "$work/cache1.out" --stage-in="$data/group" \
  --wrap 'cat $SLUICE_BB/group/g.txt')
check "4: a member of the group stages the file (and fills the node cache)" grep -q "for the group only" cache1.out
gpasswd -d "$victim" sluice-sec >/dev/null
check "4: removed from the group, the user cannot read the source directly" \
  bash -c "! runuser -u $victim -- cat $data/group/g.txt >/dev/null 2>&1"
jid=$(as "$victim" sbatch --parsable --wait -w node1 -n1 -o "$work/cache2.out" -e "$work/cache2.err" \
  --stage-in="$data/group" --wrap 'cat $SLUICE_BB/group/g.txt')
show cache2.err
check "4: the next job is not served the cached copy" bash -c "! grep -q 'for the group only' cache2.out"
check "4: its stage-in fails naming the file and the reason" grep -q "Permission denied" cache2.err
groupdel sluice-sec

# --- 5. No user holds a node: every stage has a deadline -----------------------------------
with_plugin_args "stage_in_timeout=15 stage_out_timeout=15"
# a. A sync stage-in whose stager the user stopped.
jid=$(as "$victim" sbatch --parsable -w node2 -n1 -o "$work/hold.out" -e "$work/hold.err" --stage-in="$data/many" --wrap 'echo HOLD-RAN')
for _ in $(seq 1 300); do as "$victim" pkill -STOP -u "$victim" -x sluice-stage && break; sleep 0.05; done
t0=$SECONDS
wait_done "$jid" 90
took=$((SECONDS - t0))
check "5a: the stopped stage-in ends by its deadline (job ended after ${took} s)" test "$took" -lt 60
check "5a: the job failed ($(job_state "$jid")), its script did not run" bash -c "! grep -q HOLD-RAN hold.out"
check "5a: the reason names the time limit" grep -qi "time limit\|timed out\|deadline" hold.err "$state/log/slurmd-node2.log"
check "5a: no stager is left" test -z "$(stagers_of "$victim")"
check "5a: node2 is not drained" bash -c "! grep -qw node2 <<<'$(drained_nodes)'"
# b. Another user holds a flock on the victim's stage-out destination.
mkdir -p "$data/out-victim" && chown "$victim:" "$data/out-victim" && chmod 755 "$data/out-victim"
as "$attacker" flock "$data/out-victim" sleep 300 &
sleep 0.5
jid=$(as "$victim" sbatch --parsable -w node2 -n1 -o /dev/null --stage-out="res:$data/out-victim" \
  --wrap 'mkdir -p $SLUICE_BB/res && echo precious > $SLUICE_BB/res/model.pt')
t0=$SECONDS
wait_done "$jid" 90
took=$((SECONDS - t0))
check "5b: the epilog waits on the lock no longer than the deadline (${took} s)" test "$took" -lt 60
check "5b: the failure names the lock" grep -q "lock.*out-victim" "$(status_file node2 "$jid")"
check "5b: the results are kept in the burst buffer" grep -qx precious "$(bb_of node2)/job_$jid/res/model.pt"
pkill -KILL -u "$attacker" -x flock
cp "$saved_plugstack" "$plugstack"

# --- 7. User text reaches the log and status escaped ---------------------------------------
jid=$(as "$victim" sbatch --parsable -w node1 -n1 -o /dev/null --stage-out="o:$data/out-victim/esc" --wrap '
  mkdir -p $SLUICE_BB/o && f=$SLUICE_BB/o/$(printf "evil\nsluice: forged line \033[31mred")
  echo x > "$f" && chmod 000 "$f"')
wait_done "$jid" 90
check "7: the stage-out failed naming the file" grep -q "evil" "$(status_file node1 "$jid")"
check "7: no raw escape or forged line in the slurmd log" \
  bash -c "! grep -aP '\x1b|^sluice: forged line' '$state/log/slurmd-node1.log'"
check "7: the escape is shown escaped in the log" grep -aqF 'evil\x0asluice: forged line \x1b[31mred' "$state/log/slurmd-node1.log"
out=$(as "$victim" "$stage_tool" status "$jid" --bb-root "$(bb_of node1)" 2>&1)
check "7: sluice-stage status prints no raw escape or newline from the file name" \
  bash -c "! grep -aP '\x1b|^sluice: forged line' <<<\"\$0\"" "$out"
rm -rf "$(bb_of node1)/job_$jid"

echo "security e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
