#!/usr/bin/env bash
# Builds the Debian package (CPack DEB) from the build tree, checks its metadata and contents,
# unpacks it into a clean prefix (dpkg-deb -x, no root install) and checks that what is there
# runs on its own: every ELF resolves its libraries, every tool answers --help, the plugin
# exports only slurm_spank_* and loads, and find_package(sluice)
# points at the unpacked plugin. Then builds the training example against the unpacked package
# (OUT_DIR/examples/sluice-train-mlp), and the dev cluster runs the package's plugin and tools
# (tests/CMakeLists.txt: fixture "package").
# Usage: test_package.sh BUILD_DIR SOURCE_DIR OUT_DIR
set -euo pipefail
build=${1:?}; src=${2:?}; out=${3:?}
rm -rf "$out" && mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

cpack --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1 || { cat "$out/cpack.log"; fail "cpack"; }
deb=$(ls "$out"/sluice_*.deb)
echo "PASS: built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == sluice ]] || fail "Package is '$(field Package)'"
deps=$(field Depends)
for lib in libhdf5 libhwloc libopenmpi libucx libxxhash libsqlite3; do
  [[ $deps == *"$lib"* ]] || fail "Depends lacks $lib: $deps"
done
[[ $(field Recommends) == *slurmd* ]] || fail "Recommends lacks slurmd"
# Every dependency is satisfiable on this machine (the package's own libraries are not listed).
dpkg --dry-run -i "$deb" >"$out/dry-run.log" 2>&1 || { cat "$out/dry-run.log"; fail "dpkg --dry-run -i"; }
echo "PASS: Depends ($deps) is satisfiable here"

root=$out/root
dpkg-deb -x "$deb" "$root"
plugin=$(find "$root/usr" -path '*/slurm/sluice_spank.so')
[[ -n $plugin ]] || fail "no slurm/sluice_spank.so in the package"
for tool in sluice-topo sluice-stage sluice-report sluice-mkdata; do
  [[ -x $root/usr/bin/$tool ]] || fail "no usr/bin/$tool"
  env -u LD_LIBRARY_PATH "$root/usr/bin/$tool" --help >"$out/$tool.help" 2>&1 || fail "$tool --help"
  grep -q "$tool" "$out/$tool.help" || fail "$tool --help does not name itself"
done
echo "PASS: the tools run from the unpacked package and answer --help"

unresolved=0
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q 'ELF' || continue
  file "$f" | grep -q 'not stripped' && { echo "FAIL: ${f#"$root"/} is not stripped"; unresolved=1; }
  missing=$(env -u LD_LIBRARY_PATH ldd "$f" 2>/dev/null | grep 'not found' || true)
  [[ -z $missing ]] || { echo "FAIL: ${f#"$root"/}: $missing"; unresolved=1; }
done < <(find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
(( unresolved == 0 )) || exit 1
echo "PASS: every ELF in the package is stripped and resolves its libraries"

exported=$(nm -D --defined-only "$plugin" | awk '$2 ~ /^[TDBVW]$/ {print $3}' | grep -vE '^(slurm_spank_|plugin_|spank_plugin_version$|_)' || true)
[[ -z $exported ]] || fail "the plugin exports more than slurm_spank_*: $exported"
nm -D --defined-only "$plugin" | grep -q ' slurm_spank_init$' || fail "the plugin lacks slurm_spank_init"
echo "PASS: the plugin exports only slurm_spank_* and the SPANK_PLUGIN identity symbols"

# The plugin loads from the unpacked tree with the libraries it links.
cat >"$out/load_plugin.c" <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char** argv) {
  (void)argc;
  void* h = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  return dlsym(h, "slurm_spank_init") ? 0 : 2;
}
EOF
cc -o "$out/load_plugin" "$out/load_plugin.c" -ldl
# Outside Slurm: the spank_* functions it calls are slurmd's and stay unresolved (lazy binding).
if env -u LD_LIBRARY_PATH "$out/load_plugin" "$plugin" 2>"$out/dlopen.err"; then
  echo "PASS: the unpacked plugin loads (dlopen) with its libraries"
else
  cat "$out/dlopen.err"; fail "dlopen of the unpacked plugin"
fi

cat >"$out/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(find_sluice CXX)
find_package(sluice REQUIRED)
message(STATUS "sluice_PLUGIN=${sluice_PLUGIN}")
EOF
cmake -S "$out" -B "$out/find" -DCMAKE_PREFIX_PATH="$root/usr" >"$out/find.log" 2>&1 || { cat "$out/find.log"; fail "find_package(sluice)"; }
found=$(sed -n 's/.*sluice_PLUGIN=//p' "$out/find.log")
[[ $(realpath "$found") == $(realpath "$plugin") ]] || fail "sluice_PLUGIN is $found, the plugin is at $plugin"
echo "PASS: find_package(sluice) from the unpacked package names its plugin ($found)"

cmake -S "$src/examples" -B "$out/examples" -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >"$out/examples.log" 2>&1 && cmake --build "$out/examples" --target sluice-train-mlp >>"$out/examples.log" 2>&1 ||
  { tail -30 "$out/examples.log"; fail "building examples/train_mlp.cpp against the package"; }
env -u LD_LIBRARY_PATH "$out/examples/sluice-train-mlp" --help >/dev/null || fail "sluice-train-mlp --help"
echo "PASS: the training example builds against the unpacked package and runs"
