#!/usr/bin/env bash
# Installs the build tree into a fresh prefix and builds examples/ against it, both through
# find_package(sluice) and through pkg-config, the two ways a training code links sluice.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR OUT_DIR
set -euo pipefail
build=${1:?}; src=${2:?}; out=${3:?}
prefix=$out/prefix
rm -rf "$prefix" "$out/examples" "$out/pkgconfig-c"
cmake --install "$build" --prefix "$prefix" >/dev/null

# Every installed program and library finds the sluice libraries it needs without
# LD_LIBRARY_PATH (their RUNPATH), wherever the prefix is.
unresolved=0
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q 'ELF' || continue
  missing=$(env -u LD_LIBRARY_PATH ldd "$f" 2>/dev/null | grep 'not found' || true)
  if [[ -n $missing ]]; then
    echo "FAIL: ${f#"$prefix"/}: $missing"
    unresolved=1
  fi
done < <(find "$prefix" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
(( unresolved == 0 ))
echo "PASS: every installed program and library resolves its sluice libraries"

cmake -S "$src/examples" -B "$out/examples" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out/examples" -j2 >/dev/null
test -x "$out/examples/sluice-whereami"
echo "PASS: examples built with find_package(sluice) against $prefix"

# sluice::collectives and sluice::monitor_mpi from the installed package: 3 ranks average
# gradients and write the job's telemetry file, which the installed sluice-report reads.
tel=$out/telemetry
rm -rf "$tel" && mkdir -p "$tel"
got=$(env -u LD_LIBRARY_PATH SLUICE_TELEMETRY_DIR="$tel" SLURM_JOB_ID=install-test OMPI_MCA_btl=self,vader,tcp \
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 \
  mpiexec --allow-run-as-root --oversubscribe --bind-to none -np 3 "$out/examples/sluice-gradient-average" 20)
echo "  | $got"
[[ $got == "ok: 20 steps on 3 ranks"* ]]
"$prefix/bin/sluice-report" job install-test --dir "$tel" --format json >"$tel/report.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['ranks'] == 3 and d['steps'] == 60 and d['allreduce_fraction'] > 0, d" "$tel/report.json"
echo "PASS: the installed collectives and telemetry: 3 ranks averaged, the job file reads back (60 steps)"

# pkg-config: one line, no CMake.
mkdir -p "$out/pkgconfig-c"
PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
g++ -x c++ -o "$out/pkgconfig-c/whereami-c" "$src/examples/placement_c.c" $(pkg-config --cflags --libs sluice)
record=$("$build/common/sluice-topo" bind --xml "$src/topologies/coral-lassen.xml" --tasks 4 --json)
got=$(SLUICE_PLACEMENT=$record SLURM_LOCALID=3 "$out/pkgconfig-c/whereami-c")
echo "  | $got"
[[ $got == *"local task 3 of 4: gpus 3, nics mlx5_3, cpus 136-175"* ]]
echo "PASS: C API through pkg-config reads the placement record"

# The reader through pkg-config too (MPI-free header): a program reading a sluice-mkdata file.
cat >"$out/pkgconfig-c/read.cpp" <<'EOF'
#include <sluice/reader.hpp>
#include <cstdio>
int main(int, char** argv) {
  sluice::reader::ReaderOptions o;
  o.files = {argv[1]};
  o.batch_size = 8;
  o.use_staged = false;
  sluice::reader::Reader r(o);
  const auto b = r.next();
  std::printf("%llu samples, first batch of %zu\n", static_cast<unsigned long long>(r.samples()), b.size());
}
EOF
g++ -o "$out/pkgconfig-c/read" "$out/pkgconfig-c/read.cpp" $(pkg-config --cflags --libs sluice)
"$prefix/bin/sluice-mkdata" --out "$out/pkgconfig-c/d.h5" --samples 40 --shape 4 >/dev/null
got=$(env -u LD_LIBRARY_PATH "$out/pkgconfig-c/read" "$out/pkgconfig-c/d.h5")
echo "  | $got"
[[ $got == "40 samples, first batch of 8" ]]
echo "PASS: the reader through pkg-config reads a sluice-mkdata file"
