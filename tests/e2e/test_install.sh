#!/usr/bin/env bash
# Installs the build tree into a fresh prefix and builds examples/ against it, both through
# find_package(sluice) and through pkg-config, the two ways a training code links sluice.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR OUT_DIR
set -euo pipefail
build=${1:?}; src=${2:?}; out=${3:?}
prefix=$out/prefix
rm -rf "$prefix" "$out/examples" "$out/pkgconfig-c"
cmake --install "$build" --prefix "$prefix" >/dev/null

cmake -S "$src/examples" -B "$out/examples" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out/examples" -j2 >/dev/null
test -x "$out/examples/sluice-whereami"
echo "PASS: examples built with find_package(sluice) against $prefix"

# pkg-config: one line, no CMake.
mkdir -p "$out/pkgconfig-c"
PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
g++ -x c++ -o "$out/pkgconfig-c/whereami-c" "$src/examples/placement_c.c" $(pkg-config --cflags --libs sluice)
record=$("$build/common/sluice-topo" bind --xml "$src/../shared/topologies/coral-lassen.xml" --tasks 4 --json)
got=$(SLUICE_PLACEMENT=$record SLURM_LOCALID=3 "$out/pkgconfig-c/whereami-c")
echo "  | $got"
[[ $got == *"local task 3 of 4: gpus 3, nics mlx5_3, cpus 136-175"* ]]
echo "PASS: C API through pkg-config reads the placement record"
