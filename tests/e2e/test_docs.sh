#!/usr/bin/env bash
# The guides name everything a user or admin can set: every option the SPANK plugin registers
# (spank_plugin/options.cpp) appears as --NAME in docs/user-guide.md, every plugstack.conf
# argument the plugin accepts (spank_plugin/plugin_config.cpp) as NAME= in docs/admin-guide.md,
# and every SLUICE_* variable the runtime reads (jobrt, collectives, monitor, common) in
# docs/user-guide.md. Names are taken from the sources, so a new option without docs fails.
# Usage: test_docs.sh [SOURCE_DIR]   (default: the repository this script is in)
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
user_guide=$src/docs/user-guide.md
admin_guide=$src/docs/admin-guide.md
failed=0
fail() { echo "FAIL: $*"; failed=1; }

for f in "$src/spank_plugin/options.cpp" "$src/spank_plugin/plugin_config.cpp" "$user_guide" "$admin_guide"; do
  [[ -r $f ]] || { echo "FAIL: cannot read $f"; exit 1; }
done

# Option table entries: {const_cast<char*>("gpu-topo"), const_cast<char*>("pack|spread|none"), ...
options=$(grep -oE '^[[:space:]]*\{[[:space:]]*const_cast<char[[:space:]]*\*>\("[a-z0-9-]+"\)' "$src/spank_plugin/options.cpp" |
          sed -E 's/.*\("([a-z0-9-]+)"\).*/\1/' | sort -u)
# Accepted arguments: key == "bb_root" || key == "stage_tool" ...
arguments=$(grep -oE 'key == "[a-z_]+"' "$src/spank_plugin/plugin_config.cpp" | sed -E 's/key == "([a-z_]+)"/\1/' | sort -u)
# Variables the runtime reads: string literals "SLUICE_..." in the libraries users link.
variables=$(grep -rhoE '"SLUICE_[A-Z0-9_]+"' "$src/jobrt" "$src/collectives" "$src/monitor" "$src/common" \
              --include='*.cpp' --include='*.c' --include='*.hpp' --include='*.h' | tr -d '"' | sort -u)

# The extraction itself must find something: a changed source layout must not pass silently.
[[ $(wc -w <<<"$options") -ge 4 ]] || fail "found only '$options' as options in spank_plugin/options.cpp (has the option table changed?)"
[[ $(wc -w <<<"$arguments") -ge 10 ]] || fail "found only '$arguments' as plugstack.conf arguments in spank_plugin/plugin_config.cpp"
[[ $(wc -w <<<"$variables") -ge 10 ]] || fail "found only '$variables' as SLUICE_* variables in the runtime's sources"

missing=()
for o in $options; do
  grep -qE -- "--$o([^a-z0-9-]|$)" "$user_guide" || missing+=("--$o")
done
[[ ${#missing[@]} -eq 0 ]] || fail "docs/user-guide.md does not document these sbatch/srun options: ${missing[*]}"

missing=()
for a in $arguments; do
  grep -qE "(^|[^a-z_])$a=" "$admin_guide" || missing+=("$a=")
done
[[ ${#missing[@]} -eq 0 ]] || fail "docs/admin-guide.md does not document these plugstack.conf arguments: ${missing[*]}"

missing=()
for v in $variables; do
  grep -qE "(^|[^A-Z0-9_])$v([^A-Z0-9_]|$)" "$user_guide" || missing+=("$v")
done
[[ ${#missing[@]} -eq 0 ]] || fail "docs/user-guide.md does not document these environment variables: ${missing[*]}"

if [[ $failed -eq 0 ]]; then
  echo "PASS: $(wc -w <<<"$options") options, $(wc -w <<<"$arguments") plugstack.conf arguments and" \
       "$(wc -w <<<"$variables") environment variables are documented"
fi
exit $failed
