#!/usr/bin/env bash
# Every fable-bench run that docs/performance.md quotes, into bench/results/ under this machine's
# name: tools/bench_results.sh intel-xeon. The tune goes to a cache of this run only, so the
# machine's own cache is left alone. About 12 minutes on 2 cores.
set -euo pipefail
machine=${1:?usage: tools/bench_results.sh MACHINE-NAME, e.g. intel-xeon}
out=bench/results
export OPENBLAS_NUM_THREADS=1
export FABLE_CACHE_DIR; FABLE_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$FABLE_CACHE_DIR"' EXIT
bench() { python -m fable bench "$@"; }

bench -r 5 --threads 1,2 --spin off,on --out "$out/fable-bench-sweep-$machine.json" \
    --plot "$out/fable-bench-sweep-$machine.png" > "$out/fable-bench-sweep-$machine.md"
bench -r 5 --threads 1,2 --spin off,on -o csv --no-bandwidth > "$out/fable-bench-sweep-$machine.csv"
bench -r 5 --threads 1,2 --spin off,on -o jsonl --no-bandwidth > "$out/fable-bench-sweep-$machine.jsonl"
bench --tune > "$out/fable-bench-tune-$machine.txt"
for call in suggest typing word; do
    bench -m exported/fable.int8.onnx -r 3 --threads 1,2 --spin off,on --pace 200 --calls 50 \
        --call "$call" --tuned > "$out/fable-bench-paced-$call-$machine.md"
done
bench -m exported/fable.int8.onnx,exported/fable.onnx,exported/fable.int4.onnx -r 3 --batch 1,4,8,16 \
    > "$out/fable-bench-batch-$machine.md"
bench -r 3 --backend onnxruntime,numpy > "$out/fable-bench-backends-$machine.md"
