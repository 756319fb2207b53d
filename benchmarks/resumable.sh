# Sourced by the accuracy scripts: `one NAME TRAIN_ARGUMENTS...` trains the run $runs/NAME with
# $resnet, skipping a finished one (summary.json) and resuming an interrupted one (last.pt).
one() {
    name=$1; shift
    if [ -f "$runs/$name/summary.json" ]; then return; fi
    if [ -f "$runs/$name/last.pt" ]; then
        "$resnet" train --out "$runs/$name" --resume
    else
        "$resnet" train --out "$runs/$name" --force "$@"
    fi
}
