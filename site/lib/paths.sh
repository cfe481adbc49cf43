# shellcheck shell=bash
# Sourced by site/demo.sh, site/run-tests.sh and site/devcluster/sluice-devcluster: whether a
# path can be opened by the dev cluster's unprivileged user, by slurmd and by slurmstepd.
#
# They cannot reach a path
#   - under /tmp: each emulated node's slurmd runs with a private /tmp;
#   - holding a blank: slurm.conf and plugstack.conf split on blanks;
#   - below a directory other users cannot enter (root's home is mode 0700).
# Symlinks are resolved first, so a link to such a place is caught too.

# Why other users cannot reach $1, or nothing if they can. $2: what they need of it:
# r (read), x (run) or dir (enter). From the modes, so it works before the dev cluster's
# user exists; a part of the path that does not exist yet is fine (it will be created).
why_unreachable() {
  local path need=${2:-dir} d="" part mode
  local -a parts
  path=$(readlink -m -- "$1")
  case $path in
    /tmp | /tmp/*) echo "it is under /tmp, which each emulated node's slurmd replaces with a private one"; return 0 ;;
  esac
  [[ $path != *[[:space:]]* ]] || { echo "it contains a blank, which slurm.conf and plugstack.conf cannot hold"; return 0; }
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    [[ -n $part ]] || continue
    d+=/$part
    [[ -e $d ]] || return 0
    mode=$(stat -L -c %a -- "$d")
    if [[ -d $d && ($d != "$path" || $need == dir) ]]; then
      ((8#$mode & 1)) || { echo "other users cannot enter $d (mode $mode)"; return 0; }
    elif [[ $d == "$path" ]]; then
      ((8#$mode & 4)) || { echo "other users cannot read it (mode $mode)"; return 0; }
      [[ $need != x ]] || ((8#$mode & 1)) || { echo "other users cannot run it (mode $mode)"; return 0; }
    fi
  done
  return 0
}
