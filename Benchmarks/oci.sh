#!/usr/bin/env bash
# What `contid oci-hook` adds to a container's start: start-to-exit time of a trivial
# runc container (busybox-static `true`) with and without the hook in config.json,
# RUNS pairs (default 50), interleaved in one run (each pair in a random order), against
# a private release contidd. Prints the medians, the median of the paired differences
# and its interquartile range, and the target: under 5 ms added. STATIC=1 runs the hook
# from a contid linked with a static Swift runtime (--static-swift-stdlib; about half
# the start-up of the default dynamic build).
#   [STATIC=1] Benchmarks/oci.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
scratch=${SCRATCH:-.build}
source Benchmarks/daemon-bench.sh
command -v runc >/dev/null || { echo "oci.sh needs runc (scripts/install-deps.sh)" >&2; exit 1; }
daemon_bench_setup oci.sh "$scratch"
bin="$PWD/$scratch/release"
hook_contid="$bin/contid"
if [ "${STATIC:-0}" = 1 ]; then
  swift build -c release --static-swift-stdlib --scratch-path "$scratch-static" --product contid >&2
  hook_contid="$PWD/$scratch-static/release/contid"
fi

work=$(mktemp -d /tmp/contid-oci-bench-XXXXXX)
chmod 755 "$work"
mkdir -p "$work/rules.d"
"$bin/contidd" --config /dev/null --log-dir "$work/log" --run-dir "$work/run" --state-dir "$work/state" \
  --rules-dir "$work/rules.d" 2>"$work/contidd.err" &
daemon=$!
cleanup() {
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do "$bin/contid" --run-dir "$work/run" status >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/contid" --run-dir "$work/run" status >/dev/null || { echo "contidd did not start: $(cat "$work/contidd.err")" >&2; exit 1; }

# Two bundles on one busybox-static rootfs: the same config.json, one with the hook.
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/dev" "$work/rootfs/sys"
cp "$(readlink -f /bin/busybox)" "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/true"
hook=$("$hook_contid" hook-config --runtime runc --run-dir "$work/run")
for kind in plain hooked; do
  mkdir -p "$work/$kind"
  ln -s ../rootfs "$work/$kind/rootfs"
  runc spec --bundle "$work/$kind"
  HOOK="$hook" KIND="$kind" python3 - "$work/$kind/config.json" <<'PY'
import json, os, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["path"] = os.path.realpath(os.path.join(os.path.dirname(path), "rootfs"))
if os.environ["KIND"] == "hooked":
    c["hooks"] = json.loads(os.environ["HOOK"])["hooks"]
json.dump(c, open(path, "w"))
PY
done

echo "oci.sh: $runs pairs of runc run (busybox true), with and without contid oci-hook ($hook_contid), interleaved" >&2
perl -MTime::HiRes=time -e '
  my ($runs, $work) = @ARGV;
  my (@plain, @hooked);
  sub once { my ($kind, $id) = @_;
    my $t0 = time;
    system("runc", "--root", "$work/runc", "run", "--bundle", "$work/$kind", $id) == 0
      or die "runc run $kind failed\n";
    return (time - $t0) * 1000; }
  once("plain", "warm-p"); once("hooked", "warm-h");   # page cache, first contidd request
  for my $i (1..$runs) {
    my @order = rand() < 0.5 ? ("plain", "hooked") : ("hooked", "plain");
    for my $k (@order) { my $ms = once($k, "b-$k-$i"); if ($k eq "plain") { push @plain, $ms } else { push @hooked, $ms } }
  }
  sub quantile { my ($p, @v) = @_; @v = sort { $a <=> $b } @v; my $x = $p * $#v; my $lo = int($x);
    return $v[$lo] + ($x - $lo) * (($v[$lo + 1] // $v[$lo]) - $v[$lo]); }
  my @d = map { $hooked[$_] - $plain[$_] } 0..$#plain;
  printf "without the hook: median %.2f ms (IQR %.2f-%.2f)\n", quantile(0.5, @plain), quantile(0.25, @plain), quantile(0.75, @plain);
  printf "with the hook:    median %.2f ms (IQR %.2f-%.2f)\n", quantile(0.5, @hooked), quantile(0.25, @hooked), quantile(0.75, @hooked);
  my $m = quantile(0.5, @d);
  printf "added by contid oci-hook: median of %d paired differences %.2f ms, IQR %.2f ms (%.2f to %.2f)\n",
    scalar(@d), $m, quantile(0.75, @d) - quantile(0.25, @d), quantile(0.25, @d), quantile(0.75, @d);
  printf "target: under 5 ms added: %s\n", $m < 5 ? "met" : "NOT met";
' "$runs" "$work"
registered=$(grep -c 'op=set .*res=1' "$work/log/audit.log" || true)
echo "registrations in contidd's log: $registered (expected $((runs + 1)))"
