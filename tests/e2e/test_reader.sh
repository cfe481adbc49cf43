#!/usr/bin/env bash
# The sharded reader across the dev cluster's two nodes (srun --mpi=pmix): every sample read
# exactly once per epoch by 4 ranks on 2 nodes, from the shared files, then from each node's
# staged copies (--stage-in, sync and async), as the unprivileged user.
# Usage: test_reader.sh SLUICE_MKDATA READER_TEST_MPI WORKDIR   (SLURM_CONF from env.sh)
set -uo pipefail
mkdata=$(realpath -e "${1:?usage: test_reader.sh SLUICE_MKDATA READER_TEST_MPI WORKDIR}") || exit 1
reader=$(realpath -e "${2:?usage: test_reader.sh SLUICE_MKDATA READER_TEST_MPI WORKDIR}") || exit 1
work=${3:?usage: test_reader.sh SLUICE_MKDATA READER_TEST_MPI WORKDIR}
rm -rf "$work" && mkdir -p "$work/data" && chmod 1777 "$work" && chmod 755 "$work/data"
cd "$work" || exit 1
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }

"$mkdata" --out "$work/data/d.h5" --samples 1000 --shape 4x4 --dtype f32 --labels 10 --chunk-samples 16 --files 3 >/dev/null
chmod -R a+rX "$work/data"
files=("$work"/data/d-*.h5)
check "sluice-mkdata wrote 3 files" test "${#files[@]}" -eq 3

out=$(timeout 300 srun --mpi=pmix -N2 --ntasks-per-node=2 "$reader" "${files[@]}" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
check "4 ranks on 2 nodes read every sample once per epoch (rc $rc)" grep -q "ok: 4 ranks, 1000 samples" <<<"$out"

for mode in sync async; do
  runuser -u sluice -- timeout 300 sbatch --wait -N2 --ntasks-per-node=2 -o "$work/$mode.out" \
    --stage-in="$work/data:data" --stage-mode=$mode \
    --wrap "SLUICE_TEST_EXPECT_STAGED=1 srun --mpi=pmix $reader ${files[*]}" >/dev/null 2>&1
  rc=$?
  sed 's/^/  | /' "$work/$mode.out"
  check "$mode staging: the job succeeds (rc $rc)" test "$rc" -eq 0
  check "$mode staging: every rank read its node's staged copies" grep -q "every rank read all 3 files from its node's burst buffer" "$work/$mode.out"
  check "$mode staging: every sample once per epoch" grep -q "ok: 4 ranks, 1000 samples" "$work/$mode.out"
done

echo "reader e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
