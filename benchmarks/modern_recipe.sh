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
