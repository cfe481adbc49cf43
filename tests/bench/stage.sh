#!/usr/bin/env bash
# Staging throughput: sluice-stage against cp -r and rsync -a on the same data in the same
# run. Cases: (a) one 4 GiB file, (b) 20,000 files of 4-64 KiB (random content), (c) (a)+(b)
# staged by a second job through the node cache (--cache-dir) into a new destination: hard
# links, no copy (cp and rsync have no cache: they copy (a)+(b) again; the first sluice run
# through the cache, which fills it, is reported as (c0)), (d) a second `sluice-stage in` of
# (a)+(b) into the same destinations (resume: everything skipped).
# Every timing includes a final `sync`, so each tool pays for getting its data to disk
# (sluice-stage makes every file durable before its rename, small files in batches with one
# syncfs; cp and rsync leave it to writeback).
# Each case runs REPEAT times (default 3), the tools alternating within each round, and the
# table gives the median: this VM's disk timing varies by tens of percent from one minute to
# the next, and alternating keeps cp and sluice under the same conditions.
# Prints a table and one JSON line. Not a test: ctest never runs it.
# Usage: tests/bench/stage.sh [DIR (default /var/tmp/sluice-bench)] [SLUICE_STAGE]
#   SLUICE_STAGE defaults to $SLUICE_STAGE, then build*/staging/sluice-stage, then PATH.
#   BIG_MIB (default 4096) and SMALL_FILES (default 20000) shrink the data for a quick look.
set -euo pipefail
dir=${1:-/var/tmp/sluice-bench}
repo=$(cd "$(dirname "$0")/../.." && pwd)
stage=${2:-${SLUICE_STAGE:-}}
if [[ -z $stage ]]; then
  for c in "$repo"/build*/staging/sluice-stage; do [[ -x $c ]] && stage=$c && break; done
  [[ -n $stage ]] || stage=$(command -v sluice-stage || true)
fi
[[ -x $stage ]] || { echo "stage.sh: sluice-stage not found; pass it as the second argument" >&2; exit 2; }
command -v rsync >/dev/null || { echo "stage.sh: rsync missing (site/install-deps.sh installs it)" >&2; exit 2; }
big_mib=${BIG_MIB:-4096}
small_files=${SMALL_FILES:-20000}
repeat=${REPEAT:-3}
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "stage.sh: REPEAT must be a positive integer, not '$repeat'" >&2; exit 2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
src=$dir/src
trap 'rm -rf "$src" "$dir"/dst-* "$dir/cache"; rmdir "$dir" 2>/dev/null || true' EXIT
need=$(( (big_mib * 1024 * 1024 + small_files * 36 * 1024) * 4 ))
avail=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') * 1024 ))
(( avail > need )) || { echo "stage.sh: $dir has $avail bytes free, needs $need" >&2; exit 1; }

echo "stage.sh: generating ${big_mib} MiB + ${small_files} small files under $src" >&2
mkdir -p "$src/big" "$src/small"
head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$src/big/file.bin"
# 4-64 KiB each, random content, 100 directories.
perl -e '
  my ($root, $n) = @ARGV; srand(42);
  open(my $u, "<:raw", "/dev/urandom") or die "urandom: $!";
  for my $i (0 .. $n - 1) {
    my $d = sprintf("%s/d%02d", $root, $i % 100); mkdir $d unless -d $d;
    my $size = 4096 + int(rand(60 * 1024 + 1));
    read($u, my $buf, $size) == $size or die "short read";
    open(my $f, ">:raw", sprintf("%s/f%05d", $d, $i)) or die "$d: $!"; print $f $buf; close($f);
  }' "$src/small" "$small_files"
sync
small_bytes=$(du -sb "$src/small" | cut -f1)
big_bytes=$(stat -c %s "$src/big/file.bin")

# Page cache: the same for every tool. Drop it before each run where allowed (root, not
# in a container); otherwise every tool reads a warm source.
cold=no
drop() { sync; if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then cold="drop_caches accepted"; fi; }

declare -A secs  # KEY -> the times of every round, space-separated
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { date +%s.%N; }
run() {  # run KEY CMD...: time CMD plus sync
  local key=$1; shift
  drop
  local t0 t; t0=$(now)
  "$@" >/dev/null
  sync
  t=$(calc "$(now) - $t0")
  secs[$key]+="$t "
  echo "stage.sh: $key $t s" >&2
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.6f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cp_both() { mkdir -p "$1" && cp -r "$src/big" "$src/small" "$1/"; }
through_cache() {  # through_cache DST: (a) and (b) into DST through one cache
  "$stage" in "$src/big" "$1/big" -q --cache-dir "$dir/cache" --cache-max 1T &&
    "$stage" in "$src/small" "$1/small" -q --cache-dir "$dir/cache" --cache-max 1T
}
resume() { "$stage" in "$src/big" "$dir/dst-sluice/big" -q && "$stage" in "$src/small" "$dir/dst-sluice/small" -q; }

for round in $(seq 1 "$repeat"); do
  echo "stage.sh: round $round of $repeat" >&2
  for what in big small; do
    run "$what.cp" cp -r "$src/$what" "$dir/dst-cp-$what"
    rm -rf "$dir/dst-cp-$what"
    run "$what.rsync" rsync -a "$src/$what/" "$dir/dst-rsync-$what/"
    rm -rf "$dir/dst-rsync-$what"
    rm -rf "$dir/dst-sluice/$what"
    run "$what.sluice" "$stage" in "$src/$what" "$dir/dst-sluice/$what" -q
  done
  # (c) A second job on the node stages (a)+(b) again, into a new destination, through the
  # node cache. cp and rsync have no cache: they copy (a)+(b) again.
  run "cache.cp" cp_both "$dir/dst-cp-c"
  rm -rf "$dir/dst-cp-c"
  run "cache.rsync" rsync -a "$src/big" "$src/small" "$dir/dst-rsync-c/"
  rm -rf "$dir/dst-rsync-c"
  rm -rf "$dir"/dst-cache-job* "$dir/cache"
  run "cache0.sluice" through_cache "$dir/dst-cache-job1"
  run "cache.sluice" through_cache "$dir/dst-cache-job2"
  "$stage" in "$src/small" "$dir/dst-cache-job3/small" --cache-dir "$dir/cache" >"$dir/cache-summary.txt"
  cat "$dir/cache-summary.txt" >&2
  grep -q "copied 0 (0 B).*, $small_files from cache" "$dir/cache-summary.txt" ||
    { echo "stage.sh: the second stage through the cache copied files" >&2; exit 1; }
  cmp "$src/big/file.bin" "$dir/dst-cache-job2/big/file.bin"
  diff -r -x .sluice-manifest.json "$src/small" "$dir/dst-cache-job2/small" >/dev/null
  rm -rf "$dir"/dst-cache-job* "$dir/cache" "$dir/cache-summary.txt"

  run "resume.sluice" resume
  cmp "$src/big/file.bin" "$dir/dst-sluice/big/file.bin"
  diff -r -x .sluice-manifest.json "$src/small" "$dir/dst-sluice/small" >/dev/null
done
for key in "${!secs[@]}"; do secs[$key]=$(median "${secs[$key]}"); done

files_of() { case $1 in big) echo 1 ;; small) echo "$small_files" ;; *) echo $((small_files + 1)) ;; esac; }
bytes_of() { case $1 in big) echo "$big_bytes" ;; small) echo "$small_bytes" ;; *) echo $((big_bytes + small_bytes)) ;; esac; }

printf '%-36s %-7s %9s %9s %11s %9s\n' case tool seconds MB/s files/s "vs cp"
json="{\"bench\":\"stage\",\"dir\":\"$dir\",\"cold_cache\":\"$cold\",\"cpus\":$(nproc),\"rounds\":$repeat,\"results\":["
sep=""
for what in big small cache0 cache resume; do
  case $what in
    big) label="(a) one $big_mib MiB file" ;;
    small) label="(b) $small_files files 4-64 KiB" ;;
    cache0) label="(c0) (a)+(b), 1st job, fills cache" ;;
    cache) label="(c) (a)+(b), 2nd job, via cache" ;;
    resume) label="(d) second run of (a)+(b)" ;;
  esac
  for tool in cp rsync sluice; do
    s=${secs[$what.$tool]:-}
    [[ -n $s ]] || continue
    mbs=$(calc "$(bytes_of $what) / $s / 1000000")
    fps=$(calc "$(files_of $what) / $s")
    ratio="-" vs_cp=null
    # (c0) has no cp run of its own: it is compared with (c)'s cp, which copies the same data.
    cp_secs=${secs[$what.cp]:-${secs[${what%0}.cp]:-}}
    if [[ -n $cp_secs ]]; then
      vs_cp=$(printf '%.3f' "$(calc "$cp_secs / $s")")
      ratio=$(printf '%.2fx' "$vs_cp")
    fi
    printf '%-36s %-7s %9.2f %9.0f %11.1f %9s\n' "$label" "$tool" "$s" "$mbs" "$fps" "$ratio"
    json+="$sep{\"case\":\"$what\",\"tool\":\"$tool\",\"seconds\":$(printf '%.3f' "$s"),\"mb_per_s\":$(printf '%.1f' "$mbs"),\"files_per_s\":$(printf '%.1f' "$fps"),\"vs_cp\":$vs_cp}"
    sep=","
  done
done
echo "(vs cp: cp's time / this tool's time; above 1 is faster than cp. Median of $repeat rounds. Timings include sync. Cold cache: $cold.)"
echo "$json]}"
