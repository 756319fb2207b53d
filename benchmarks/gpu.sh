#!/bin/sh
# Every GPU figure of BENCHMARKS.md and the paper's Table 6 at full length, in two calls of at most
# 10 minutes each on one GPU with no internet:
#   benchmarks/gpu.sh OUT --part speed      # inference, throughput, feeding, cifar, speedrun against their peers
#   benchmarks/gpu.sh OUT --part evidence   # plain and ResNet 20, 32, 44, 56, 110: 64,000 iterations each
#   benchmarks/gpu.sh OUT --part speed --quick   # every section at tiny sizes on the CPU (the test suite runs it)
# Options: --only "SECTION ..." (speed: a subset, e.g. to rerun what did not fit), --depths "20 32 ..." (evidence).
#
# It reads nothing from outside the working tree but the git-ignored folder .bench/, prepared once
# where there is internet and carried with the call:
#   mkdir -p .bench && cp cifar10-jpeg.tar.gz .bench/
#   python -m pip download --no-deps --no-binary :all: airbench==0.1.8 -d .bench   # airbench-0.1.8.tar.gz
# (airbench is pure Python: its unpacked sdist goes on PYTHONPATH, no install.)
#
# Each section (speed) or the whole set of runs (evidence) has its own time cap and its own process:
# a section that fails or runs out of time costs only itself. As each section ends, its rows go to
# OUT/PART.json and one line to OUT/PART.txt ("inference: ok (81 s)", "cifar: timed out after 150 s",
# "feeding: failed (exit 1): RuntimeError: ..."), with the inductor's CUDA-graph skips and the
# recompilations; everything printed goes to OUT/PART.log. Evidence leaves OUT/evidence.tar.gz: the
# `resnet reproduce degradation` report when every run finished, each run's metrics and summary in any case.
set -u
out=${1:?usage: benchmarks/gpu.sh OUT --part speed|evidence [--quick] [--only SECTIONS] [--depths DEPTHS]}
shift
part="" quick="" only="" depths="20 32 44 56 110"
while [ $# -gt 0 ]; do
    case "$1" in
        --part) part=$2; shift 2 ;;
        --quick) quick=--quick; shift ;;
        --only) only=$2; shift 2 ;;
        --depths) depths=$2; shift 2 ;;
        *) echo "benchmarks/gpu.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$part" in speed|evidence) ;; *) echo "benchmarks/gpu.sh: --part speed or --part evidence, not '$part'" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
[ -x "$root/.venv/bin/python" ] && python=${PYTHON:-$root/.venv/bin/python}
mkdir -p "$out" && out=$(cd "$out" && pwd)
# the logs this script counts: dynamo's recompilations and inductor's CUDA-graph skips
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TORCH_LOGS=recompiles,cudagraphs
bench="$root/.bench"
log="$out/$part.log" status="$out/$part.txt"
: >>"$log"

if [ -n "$quick" ]; then
    data=embedded  # the subset shipped in the package
    caps="inference=600 throughput=600 feeding=600 cifar=600 speedrun=600 evidence=600 report=600"  # a busy CPU: minutes
    iters=4 depths=20 concurrent=2 sets="--set batch_size=16 --set log.evals=2"
else
    data="$bench/cifar10-jpeg.tar.gz"
    [ -f "$data" ] || { echo "$part: failed: $data is missing (see the header of benchmarks/gpu.sh)" | tee -a "$status"; exit 1; }
    # speed: the caps add up to 570 s, inside a 600 s call (each includes its process's start)
    caps="inference=100 throughput=140 feeding=50 cifar=150 speedrun=130 evidence=470 report=60"
    # every Table-6 run at once: each needs at most 2.1 GiB of the GPU's 139 and a core of the 16
    # (benchmarks/table6_memory.py measures it); CUDA graphs, as the cifar section's end-to-end run
    iters=64000 concurrent=10 sets="--set compile=reduce-overhead"
    if [ -f "$bench/airbench-0.1.8.tar.gz" ]; then
        tar xzf "$bench/airbench-0.1.8.tar.gz" -C "$bench" && export PYTHONPATH="$PYTHONPATH:$bench/airbench-0.1.8"
    fi
fi
cap() { echo "$caps" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# one line about what just ended: ok, failed and why, or timed out; recompilations and CUDA-graph skips
report() {  # NAME EXIT-CODE SECONDS LOG
    case "$2" in
        0) what="ok" ;;
        124|137) what="timed out after $(cap "$1") s" ;;
        *) what="failed (exit $2): $(grep -E '^[A-Za-z_.]*(Error|Exception)\b|failed: |^resnet|error: ' "$4" | tail -n 1)" ;;
    esac
    counts="recompilations $(grep -c "Recompiling function" "$4"), cudagraph skips $(grep -c "skipping cudagraphs" "$4")"
    echo "$1: $what ($3 s; $counts)" | tee -a "$status"
}

timed_section() {  # NAME COMMAND...: the command under the section's cap, its output in the log
    name=$1; shift
    start=$(date +%s)
    timeout -k 10 "$(cap "$name")" "$@" >"$out/.section.log" 2>&1
    code=$?
    cat "$out/.section.log" >>"$log"
    report "$name" "$code" "$(($(date +%s) - start))" "$out/.section.log"
    rm -f "$out/.section.log"
}

if [ "$part" = speed ]; then
    for s in ${only:-inference throughput feeding cifar speedrun}; do
        timed_section "$s" "$python" "$root/benchmarks/run.py" $quick --only "$s" --data "$data" --out "$out/speed.json"
    done
    [ -f "$out/speed.json" ] && "$python" "$root/benchmarks/run.py" --table "$out/speed.json" | tee -a "$log"
    exit 0
fi

# evidence: the degradation experiment's runs, `concurrent` at a time (the deepest first, so that none
# starts last), each under what is left of the cap; then its report, from the finished run folders
scratch=$(mktemp -d) && trap 'rm -rf "$scratch"' EXIT
work="$scratch/degradation"  # outside OUT: only the tarball of it comes back
jobs=$(for d in $depths; do echo "$d"; done | sort -rn | while read -r d; do echo "resnet$d"; echo "plain$d"; done)
start=$(date +%s)
limit=$(($(cap evidence) - 30))  # the runs checkpoint and stop before the cap kills them
for model in $jobs; do echo "$model"; done | timeout -k 10 "$(cap evidence)" xargs -P "$concurrent" -I MODEL \
    "$python" -m resnet train --model MODEL --recipe cifar-paper --data "$data" --iters "$iters" \
    --out "$work/runs/MODEL" --set log.diagnostics=true $sets --time-limit "${limit}s" >"$out/.section.log" 2>&1
code=$?
cat "$out/.section.log" >>"$log"
runs=$(echo $jobs | wc -w)
finished=$(ls "$work"/runs/*/summary.json 2>/dev/null | wc -l)
report evidence "$code" "$(($(date +%s) - start))" "$out/.section.log"
echo "evidence: $finished of $runs runs finished, $concurrent at a time" | tee -a "$status"
if [ "$finished" -eq "$runs" ]; then
    start=$(date +%s)
    timeout "$(cap report)" "$python" -m resnet reproduce degradation --depths $depths --data "$data" --iters "$iters" \
        --out "$work" --set log.diagnostics=true $sets >"$out/.section.log" 2>&1
    code=$?
    cat "$out/.section.log" >>"$log"
    report report "$code" "$(($(date +%s) - start))" "$out/.section.log"
fi
rm -f "$out/.section.log"
tar czf "$out/evidence.tar.gz" -C "$work" --exclude='*.pt' --exclude='.lock' . 2>>"$log"
exit 0
