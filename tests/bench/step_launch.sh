#!/usr/bin/env bash
# Benchmark (not a test): what the sluice plugin adds to step launch on the dev cluster.
# Times `srun -N2 --ntasks-per-node=4 --gres=gpu:4 true` in three configurations, interleaved
# round by round so drift hits all of them alike:
#   baseline  plugstack.conf empty (no plugin)
#   loaded    plugin loaded, job without --gpu-topo (default_policy=none)
#   pack      plugin loaded, --gpu-topo=pack (loads the topology XML, places 8 tasks)
# Prints a table and a JSON line; the figure of merit is median(pack) - median(baseline).
# Usage: step_launch.sh [ROUNDS]   (the cluster must be up: source <state>/env.sh first)
set -euo pipefail
rounds=${1:-30}
: "${SLURM_CONF:?source the dev cluster env.sh first}"
plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
[[ -f $plugstack ]] || { echo "step_launch.sh: no PlugStackConfig in $SLURM_CONF" >&2; exit 1; }
saved=$(mktemp)
cp "$plugstack" "$saved"
trap 'cp "$saved" "$plugstack"; rm -f "$saved"' EXIT
grep -q sluice_spank "$saved" || { echo "step_launch.sh: $plugstack does not load the sluice plugin" >&2; exit 1; }

declare -A times
step() {  # step MODE: one timed srun, milliseconds into times[MODE]
  local mode=$1 extra=() t0 t1
  [[ $mode == pack ]] && extra=(--gpu-topo=pack)
  if [[ $mode == baseline ]]; then : >"$plugstack"; else cp "$saved" "$plugstack"; fi
  t0=$(date +%s%N)
  srun -N2 --ntasks-per-node=4 --gres=gpu:4 "${extra[@]}" true
  t1=$(date +%s%N)
  times[$mode]+="$(( (t1 - t0) / 1000 )) "
}

modes=(baseline loaded pack)
for m in "${modes[@]}"; do step "$m"; times[$m]=""; done  # warm-up, discarded
for ((r = 0; r < rounds; r++)); do
  for m in $(printf '%s\n' "${modes[@]}" | shuf); do step "$m"; done
done

stats() {  # stats "us us us ..." -> "median mean p90" in ms
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1; s+=$1} END {
    printf "%.1f %.1f %.1f", v[int((NR+1)/2)]/1000, s/NR/1000, v[int(NR*0.9+0.5)]/1000 }'
}
read -r b_med b_mean b_p90 <<<"$(stats "${times[baseline]}")"
printf '\nsrun -N2 --ntasks-per-node=4 --gres=gpu:4 true, %d rounds, %s\n' "$rounds" "$(hostname)"
printf '%-10s %10s %10s %10s %14s %8s\n' config median_ms mean_ms p90_ms added_median_ms ratio
json="{\"benchmark\":\"step_launch\",\"rounds\":$rounds,\"configs\":{"
for m in "${modes[@]}"; do
  read -r med mean p90 <<<"$(stats "${times[$m]}")"
  added=$(awk -v a="$med" -v b="$b_med" 'BEGIN{printf "%.1f", a-b}')
  ratio=$(awk -v a="$med" -v b="$b_med" 'BEGIN{printf "%.3f", a/b}')
  printf '%-10s %10s %10s %10s %14s %8s\n' "$m" "$med" "$mean" "$p90" "$added" "$ratio"
  json+="\"$m\":{\"median_ms\":$med,\"mean_ms\":$mean,\"p90_ms\":$p90,\"added_median_ms\":$added,\"ratio_vs_baseline\":$ratio},"
done
echo "${json%,}},\"target_added_ms\":20}"
