#!/bin/sh
# Does bf16 autocast keep accuracy? The same runs in fp32 and bf16, seed by seed: the `fast` recipe on
# the embedded subset (3 seeds) and 4,000 iterations of `cifar-paper` on cifar10-jpeg (2 seeds).
# Resumable: a finished run is skipped, an interrupted one resumed. Results: summary.json of each run.
#   nohup benchmarks/bf16_accuracy.sh RUNS_FOLDER CIFAR10_JPEG_TARBALL > RUNS_FOLDER/log.txt 2>&1 &
set -e
runs=${1:?the folder for the runs}
data=${2:?the cifar10-jpeg tarball}
resnet="$(dirname "$0")/../.venv/bin/resnet"
. "$(dirname "$0")/resumable.sh"
for seed in 0 1 2; do
    for p in fp32 bf16; do
        one "fast-$p-seed$seed" --recipe fast --set precision=$p --set seed=$seed
    done
done
for seed in 0 1; do
    for p in fp32 bf16; do
        one "cifar-paper-4k-$p-seed$seed" --recipe cifar-paper --data "$data" --iters 4000 --set precision=$p --set seed=$seed
    done
done
