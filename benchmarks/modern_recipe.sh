#!/bin/sh
# How much do the modern tricks buy at a fixed budget? resnet20 on cifar10-jpeg, `cifar-paper` against
# `cifar-modern` at the same 3,000 iterations of batch 128, seeds 0 and 1 (issue 18, docs/results.md).
# Resumable: a finished run is skipped, an interrupted one resumed. Results: summary.json of each run.
#   nohup benchmarks/modern_recipe.sh RUNS_FOLDER CIFAR10_JPEG_TARBALL > RUNS_FOLDER/log.txt 2>&1 &
set -e
runs=${1:?the folder for the runs}
data=${2:?the cifar10-jpeg tarball}
iters=${ITERS:-3000}
resnet="$(dirname "$0")/../.venv/bin/resnet"
. "$(dirname "$0")/resumable.sh"
for seed in 0 1; do
    for recipe in cifar-paper cifar-modern; do
        one "$recipe-seed$seed" --recipe $recipe --data "$data" --iters "$iters" --set seed=$seed --set log.evals=12
    done
done
# the table of docs/results.md: final test error, the mean of the last three evaluations, wall time
"$(dirname "$0")/../.venv/bin/python" - "$runs" <<'PY'
import json, sys
from pathlib import Path

print("| run | test error (final) | mean of the last three evaluations | trained weights' test error | wall time |")
print("|---|---|---|---|---|")
for run in sorted(Path(sys.argv[1]).glob("*/summary.json")):
    summary = json.loads(run.read_text())
    rows = [json.loads(line) for line in (run.parent / "metrics.jsonl").read_text().splitlines()]
    last = [100 * r["test_error"] for r in rows[-3:]]
    raw = summary["final"].get("test_raw_error")
    print(
        f"| {run.parent.name} | {100 * summary['final']['test_error']:.2f}% | {sum(last) / len(last):.2f}% "
        f"({', '.join(f'{e:.2f}' for e in last)}) | {'' if raw is None else f'{100 * raw:.2f}%'} "
        f"| {summary['seconds'] / 60:.1f} min |"
    )
PY
