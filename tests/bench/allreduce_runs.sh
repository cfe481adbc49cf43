#!/usr/bin/env bash
# Repeats sluice-bench-allreduce (--json) and prints, per size, the median over the runs of
# each run's median time: steadier than one run on a shared machine. Not a test.
# Usage: tests/bench/allreduce_runs.sh RUNS NP [sluice-bench-allreduce args...]
#   BENCH (default: build*/collectives/sluice-bench-allreduce), MPIRUN_ARGS (extra mpirun args).
set -euo pipefail
runs=$1 np=$2; shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH:-}
if [[ -z $bench ]]; then
  for c in "$repo"/build*/collectives/sluice-bench-allreduce; do [[ -x $c ]] && bench=$c && break; done
fi
[[ -x $bench ]] || { echo "allreduce_runs.sh: sluice-bench-allreduce not found (set BENCH)" >&2; exit 2; }
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}
out=${KEEP_JSON:-$(mktemp)}   # KEEP_JSON=file keeps the raw JSON lines
[[ -n ${KEEP_JSON:-} ]] || trap 'rm -f "$out"' EXIT
: >"$out"
for ((i = 0; i < runs; i++)); do
  # shellcheck disable=SC2086
  mpirun --allow-run-as-root --oversubscribe ${MPIRUN_ARGS:-} -np "$np" "$bench" --json "$@" | grep '^{' >>"$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = rows[0]["ranks"]
mem = statistics.median(r["memcpy_GBps"] for r in rows)
print(f"# {len(rows)} runs, {n} ranks, transport {rows[0].get('transport')}, algo {rows[0].get('algo')}; "
      f"memcpy median {mem:.2f} GB/s (runs: " + ", ".join("%.1f" % r["memcpy_GBps"] for r in rows) + ")")
print(f"{'bytes':>10} {'sluice_us':>10} {'mpi_us':>10} {'s_busbw':>8} {'m_busbw':>8} {'mpi/slc':>8} {'s%memcpy':>8}  wins")
for i, res in enumerate(rows[0]["results"]):
    s = statistics.median(r["results"][i]["sluice_us"] for r in rows)
    m = statistics.median(r["results"][i]["mpi_us"] for r in rows)
    sb = statistics.median(r["results"][i]["sluice_busbw_GBps"] for r in rows)
    mb = statistics.median(r["results"][i]["mpi_busbw_GBps"] for r in rows)
    wins = sum(r["results"][i]["sluice_us"] <= r["results"][i]["mpi_us"] for r in rows)
    print(f"{res['bytes']:>10} {s:>10.2f} {m:>10.2f} {sb:>8.3f} {mb:>8.3f} {m / s:>8.2f} {100 * sb / mem:>7.0f}%  {wins}/{len(rows)}")
PY
