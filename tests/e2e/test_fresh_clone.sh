#!/usr/bin/env bash
# The README's demo command in fresh clones, as a new user runs it: the repository is cloned
# into a new directory with nothing beside it, and `site/demo.sh` must end with the
# placement check and the training result. Places (default: both):
#   home  a directory of mode 0700, as root's home is (other users cannot enter it)
#   tmp   a directory under /tmp (each emulated node has a private /tmp)
#   blank a path with a blank in it, entered through a symlink ("link/sluice" -> "my work/sluice")
# Each clone builds from scratch (no tests): a few minutes on 2 cores per place.
# The dev cluster gets its own state dir (removed with 'down --purge') and demo dir.
# Usage: test_fresh_clone.sh SOURCE_DIR [home|tmp|blank]...   (as root; SOURCE_DIR a git repository)
set -uo pipefail
src=${1:?usage: test_fresh_clone.sh SOURCE_DIR [home|tmp|blank]...}; shift
places=("$@"); [[ ${#places[@]} -gt 0 ]] || places=(home tmp blank)
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIP: $src is not a git repository"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root"; exit 77; }
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }
parent="" clone="" state="" demo=""
cleanup() {
  if [[ -n $state && -n $clone ]]; then
    SLUICE_DEVCLUSTER_DIR=$state "$clone/site/devcluster/sluice-devcluster" down --purge >/dev/null 2>&1
  fi
  [[ -z $parent ]] || rm -rf "$parent"
  [[ -z $state ]] || rm -rf "$state"
  [[ -z $demo ]] || rm -rf "$demo"
  parent="" clone="" state="" demo=""
}
trap cleanup EXIT

for where in "${places[@]}"; do
  case $where in
    home) parent=$(mktemp -d /var/lib/sluice-clone-home.XXXXXX) ;;  # mktemp: mode 0700
    tmp) parent=$(mktemp -d /tmp/sluice-clone.XXXXXX) && chmod 0755 "$parent" ;;
    blank) parent=$(mktemp -d /var/lib/sluice-clone-blank.XXXXXX) && chmod 0755 "$parent" ;;
    *) echo "unknown place '$where' (home, tmp or blank)"; exit 2 ;;
  esac
  clone=$parent/sluice
  if [[ $where == blank ]]; then
    mkdir "$parent/my work" && ln -s "my work" "$parent/link"
    clone=$parent/link/sluice  # cloned into "my work", used through the link
  fi
  state=$(mktemp -d /var/lib/sluice-clone-state.XXXXXX) && chmod 0755 "$state"
  demo=$(mktemp -d /var/tmp/sluice-clone-demo.XXXXXX) && chmod 0755 "$demo"
  git clone -q "$src" "$clone" || { echo "FAIL: git clone"; exit 1; }
  log=$parent/demo.log
  [[ $where != home ]] || check "$where: the clone's parent is mode 0700 ($(stat -c %a "$parent"))" \
    test "$(stat -c %a "$parent")" = 700
  start=$SECONDS
  (cd "$clone" && env -u SLUICE_BUILD_DIR SLUICE_DEVCLUSTER_DIR="$state" SLUICE_DEMO_DIR="$demo" \
    timeout 1800 site/demo.sh) >"$log" 2>&1
  rc=$?
  echo "  ($where: site/demo.sh took $((SECONDS - start)) s)"
  [[ $rc -eq 0 ]] || tail -n 40 "$log" | sed 's/^/  | /'
  check "$where: site/demo.sh succeeds in a fresh clone (rc $rc)" test "$rc" -eq 0
  pl=$(grep -n '^placement check: 8 of 8 ranks passed$' "$log" | cut -d: -f1)
  tr=$(grep -n '^result: {.*"identical":true' "$log" | cut -d: -f1)
  check "$where: the placement check passed for all 8 ranks" test -n "$pl"
  check "$where: then the training printed its result, identical weights on every rank" \
    bash -c "[[ -n '$tr' && -n '$pl' && $tr -gt $pl ]]"
  check "$where: the checkpoint was staged out into this run's dir" grep -q "^checkpoint staged out: .* $demo/run-" "$log"
  check "$where: it ends with the report and how to stop the cluster" \
    bash -c "tail -n 2 '$log' | grep -q 'down --purge'"
  check "$where: nothing the daemons run comes from the clone" \
    bash -c "! grep -F '$parent' '$state/plugstack.conf' '$state/slurm.conf'"
  SLUICE_DEVCLUSTER_DIR=$state "$clone/site/devcluster/sluice-devcluster" down --purge >"$parent/down.log" 2>&1
  check "$where: down --purge removes the state dir and what is installed there" test ! -e "$state"
  cleanup
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
