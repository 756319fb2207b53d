#!/bin/sh
# Every GPU figure of BENCHMARKS.md and the paper's Table 6 at full length, in calls of at most
# 10 minutes each on one GPU with no internet:
#   benchmarks/gpu.sh OUT --part speed      # inference, throughput, feeding, cifar, speedrun against their peers
#   benchmarks/gpu.sh OUT --part evidence   # plain and ResNet 20, 32, 44, 56, 110: 64,000 iterations each
#   benchmarks/gpu.sh OUT --part evidence --cap 150   # again at once: continues what the first call left
#   benchmarks/gpu.sh OUT --part speed --quick   # every section at tiny sizes on the CPU (the test suite runs it)
# Options: --only "SECTION ..." (speed: a subset, e.g. to rerun what did not fit), --depths "20 32 ..." (evidence),
# --cap SECONDS (evidence: all of it in this call, default 560), --work DIR (evidence: where the runs live,
# default .evidence/), --no-mps (evidence: the runs take turns on the GPU), --commit HASH (evidence: the
# code's commit, recorded in the weights it packs: the device's copy of the tree has no git history).
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
# recompilations; everything printed goes to OUT/PART.log.
#
# Evidence trains its runs in WORK/runs/MODEL (git-ignored, so the device machine keeps it between calls
# while it stays up): a run finished before is kept, an interrupted one resumes from its checkpoint, so a
# second call made at once continues what the first could not finish. Its processes share the GPU through
# CUDA MPS where the machine has it (their small kernels then run side by side rather than in turns); one
# line of OUT/evidence.txt says whether MPS ran, one a run how far it got. The runs train until 30 s
# before the cap; once all have finished, what is left of it writes the `resnet reproduce degradation`
# report and packs each ResNet's final weights as the package ships them (OUT/weights/MODEL-cifar10.safetensors,
# `resnet.export.ship`); a second call does what the first had no time left for. OUT/evidence.tar.gz holds
# the report and every run's logs (no checkpoints).
set -u
out=${1:?usage: benchmarks/gpu.sh OUT --part speed|evidence [--quick] [--only SECTIONS] [--depths DEPTHS] [--cap SECONDS] [--work DIR] [--no-mps] [--commit HASH]}
shift
part="" quick="" only="" depths="20 32 44 56 110" cap="" work="" mps=auto commit=""
while [ $# -gt 0 ]; do
    case "$1" in
        --part) part=$2; shift 2 ;;
        --quick) quick=--quick; shift ;;
        --only) only=$2; shift 2 ;;
        --depths) depths=$2; shift 2 ;;
        --cap) cap=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --no-mps) mps=off; shift ;;
        --commit) commit=$2; shift 2 ;;
        *) echo "benchmarks/gpu.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$part" in speed|evidence) ;; *) echo "benchmarks/gpu.sh: --part speed or --part evidence, not '$part'" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
[ -x "$root/.venv/bin/python" ] && python=${PYTHON:-$root/.venv/bin/python}
mkdir -p "$out" && out=$(cd "$out" && pwd)
if [ -n "$work" ]; then mkdir -p "$work" && work=$(cd "$work" && pwd); fi
# from the tree's root, so that the runs record their data as .bench/..., not as this machine's path
cd "$root" || exit 1
# the logs this script counts: dynamo's recompilations and inductor's CUDA-graph skips
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TORCH_LOGS=recompiles,cudagraphs
bench="$root/.bench"
log="$out/$part.log" status="$out/$part.txt"
: >>"$log"

if [ -n "$quick" ]; then
    data=embedded  # the subset shipped in the package
    caps="inference=600 throughput=600 feeding=600 cifar=600 speedrun=600 evidence=${cap:-600} report=600 weights=600"  # a busy CPU: minutes
    iters=4 depths=20 concurrent=2 sets="--set batch_size=16 --set log.evals=2"
else
    data=.bench/cifar10-jpeg.tar.gz
    [ -f "$data" ] || { echo "$part: failed: $data is missing (see the header of benchmarks/gpu.sh)" | tee -a "$status"; exit 1; }
    # speed: the caps add up to 570 s, inside a 600 s call (each includes its process's start)
    caps="inference=100 throughput=140 feeding=50 cifar=150 speedrun=130 evidence=${cap:-560} report=60 weights=120"
    # every Table-6 run at once: each needs at most 2.1 GiB of the GPU's 139 and a core of the 16
    # (benchmarks/table6_memory.py measures it); CUDA graphs, as the cifar section's end-to-end run
    iters=64000 concurrent=10 sets="--set compile=reduce-overhead"
    # each process compiles on its own thread, not with a pool of 16 worker processes: ten pools at once
    # are 160 processes (the first call that started ten runs with them lost its machine; one thread each ran)
    export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-1}
    if [ -f "$bench/airbench-0.1.8.tar.gz" ]; then
        tar xzf "$bench/airbench-0.1.8.tar.gz" -C "$bench" && export PYTHONPATH="$PYTHONPATH:$bench/airbench-0.1.8"
    fi
fi
cap() { echo "$caps" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# one line about what just ended: ok, failed and why, or timed out; recompilations and CUDA-graph skips
report() {  # NAME EXIT-CODE SECONDS LOG [CAP]
    case "$2" in
        0) what="ok" ;;
        124|137) what="timed out after ${5:-$(cap "$1")} s" ;;
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
# starts last), resumed where an earlier call left them, until 30 s before the cap; then, in what is left
# of it, the report and the ResNets' weights, once every run has finished
deadline=$(($(date +%s) + $(cap evidence)))
left() { echo $((deadline - $(date +%s))); }
least() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }
work=${work:-$root/.evidence}
mkdir -p "$work/runs" "$work/weights" && work=$(cd "$work" && pwd)
if [ "$mps" = auto ]; then
    if ! command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
        mps="not used (no nvidia-cuda-mps-control here)"
    else
        # the daemon's pipes and log, beside the runs: a later call finds a daemon that outlived its call
        export CUDA_MPS_PIPE_DIRECTORY="$work/mps/pipe" CUDA_MPS_LOG_DIRECTORY="$work/mps/log"
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        # a daemon left by an earlier call that was cut off (it outlives its call) is stopped first
        echo quit | timeout 20 nvidia-cuda-mps-control >/dev/null 2>&1
        if nvidia-cuda-mps-control -d >>"$log" 2>&1 && timeout 60 "$python" -c \
            "import torch; assert torch.ones(3, device='cuda').sum().item() == 3" >>"$log" 2>&1; then
            mps=on
            trap 'echo quit | timeout 20 nvidia-cuda-mps-control' EXIT
        else
            echo quit | timeout 20 nvidia-cuda-mps-control >/dev/null 2>&1
            unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
            mps="not used (its daemon did not start or answer: see the log)"
        fi
    fi
fi
echo "mps: $mps" | tee -a "$status"
jobs=$(for d in $depths; do echo "$d"; done | sort -rn | while read -r d; do echo "resnet$d"; echo "plain$d"; done)
before=$(for model in $jobs; do [ -f "$work/runs/$model/summary.json" ] && echo "$model"; done | wc -l)
start=$(date +%s)
train=$(left)
limit=$((train - 30)); [ "$limit" -ge 1 ] || limit=1  # the runs checkpoint and stop before the cap kills them
# one run: kept if it finished before, resumed from its checkpoint if it has one, else started
one='dir=$work/runs/$1
[ -f "$dir/summary.json" ] && { echo "$1: finished before, kept"; exit 0; }
[ -f "$dir/last.pt" ] && exec "$python" -m resnet train --out "$dir" --resume --time-limit "${limit}s"
exec "$python" -m resnet train --model "$1" --recipe cifar-paper --data "$data" --iters "$iters" --out "$dir" \
    --set log.diagnostics=true $sets --time-limit "${limit}s"'
export python data iters sets work limit
for model in $jobs; do echo "$model"; done | timeout -k 10 "$train" xargs -P "$concurrent" -n 1 \
    sh -c "$one" sh >"$out/.section.log" 2>&1
code=$?
cat "$out/.section.log" >>"$log"
report evidence "$code" "$(($(date +%s) - start))" "$out/.section.log" "$train"
runs=0 finished=0
for model in $jobs; do  # how far each run got
    runs=$((runs + 1)) dir=$work/runs/$model
    if [ -f "$dir/summary.json" ]; then
        finished=$((finished + 1)) state="finished"
    else
        step=$(tail -n 1 "$dir/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step": \([0-9]*\),.*/\1/p')
        state="at iteration ${step:-0} of $iters when last logged$([ -f "$dir/last.pt" ] && echo ", its checkpoint kept: a call again continues it")"
    fi
    echo "$model: $state" | tee -a "$status"
done
echo "evidence: $finished of $runs runs finished, $concurrent at a time" | tee -a "$status"
# the report, then the weights, each in what is left of the cap (at least 15 s, else the next call's)
pack='import sys
from pathlib import Path
from resnet.export import ship
work, commit = Path(sys.argv[1]), sys.argv[2] or None
for depth in sys.argv[3:]:  # each ResNet once: a file packed by an earlier call is kept
    packed = work / "weights" / f"resnet{depth}-cifar10.safetensors"
    if not packed.exists():
        print("packed", ship(work / "runs" / f"resnet{depth}", out=packed, commit=commit), flush=True)'
for step in report weights; do
    [ "$finished" -eq "$runs" ] || break
    if [ $step = report ] && [ "$before" -eq "$runs" ] && [ -f "$work/summary.md" ]; then
        echo "report: kept (an earlier call wrote it from these runs)" | tee -a "$status"
        continue
    fi
    budget=$(least "$(cap $step)" "$(left)")
    if [ "$budget" -lt 15 ]; then
        echo "$step: not run, the cap is spent (a call again does it; the finished runs are kept)" | tee -a "$status"
        continue
    fi
    start=$(date +%s)
    if [ $step = report ]; then
        timeout "$budget" "$python" -m resnet reproduce degradation --depths $depths --data "$data" --iters "$iters" \
            --out "$work" --set log.diagnostics=true $sets >"$out/.section.log" 2>&1
    else
        timeout "$budget" "$python" -c "$pack" "$work" "$commit" $depths >"$out/.section.log" 2>&1
    fi
    code=$?
    cat "$out/.section.log" >>"$log"
    report $step "$code" "$(($(date +%s) - start))" "$out/.section.log" "$budget"
done
rm -f "$out/.section.log"
if ls "$work"/weights/*.safetensors >/dev/null 2>&1; then
    mkdir -p "$out/weights" && cp "$work"/weights/*.safetensors "$out/weights/"
fi
tar czf "$out/evidence.tar.gz" -C "$work" --exclude='*.pt' --exclude='.lock' --exclude='weights' --exclude='mps' . 2>>"$log"
exit 0
