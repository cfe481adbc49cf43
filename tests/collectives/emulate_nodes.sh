#!/usr/bin/env bash
# Runs a program as if the job spanned several nodes: every rank gets a placement record
# (SLUICE_PLACEMENT) naming node "emu<k>", k = rank / RANKS_PER_NODE (or, with a comma list
# in EMU_NODE_SIZES, nodes of those sizes), the way the dev cluster's two slurmd share one host.
# Usage (under mpirun): emulate_nodes.sh RANKS_PER_NODE|SIZES PROGRAM [ARGS...]
set -euo pipefail
spec=$1; shift
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}
node=0
if [[ $spec == *,* ]]; then
  IFS=, read -ra sizes <<<"$spec"
  left=$rank
  for s in "${sizes[@]}"; do
    (( left < s )) && break
    left=$((left - s)); node=$((node + 1))
  done
else
  node=$((rank / spec))
fi
export SLUICE_PLACEMENT="{\"version\":1,\"policy\":\"none\",\"topology\":\"test\",\"cpu_mode\":\"native\",\"node\":\"emu$node\",\"tasks\":[]}"
exec "$@"
