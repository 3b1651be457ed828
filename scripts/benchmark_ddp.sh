#!/bin/bash
# Epochs per second of one process against torchrun with two (one thread each) on the 784-400-20 net
# and full MNIST, at equal global batch; then the gloo all-reduce time of the net's gradient size.
#   bash scripts/benchmark_ddp.sh [MNIST_NPZ]      (default ../shared/data/mnist.npz)
# Seconds per epoch (training part) are in each run's history.csv; results in docs/benchmarks.md.
set -e
NPZ=${1:-../shared/data/mnist.npz}
PY=.venv/bin/python; TR=.venv/bin/torchrun; OUT=${OUT:-/tmp/pyro_vae_ddp}
COMMON="--dataset npz:$NPZ --binarize dynamic --hidden 400 --latent-dim 20 --epochs 3 --threads 1 --seed 0 --quiet"
rm -rf "$OUT"; mkdir -p "$OUT"
for setting in "1 128" "2 64" "1 256" "2 128" "1 1024" "2 512"; do
  set -- $setting
  if [ "$1" = 1 ]; then $PY -m pyro_vae train $COMMON --batch-size "$2" --out "$OUT/p$1_b$2"
  else $TR --standalone --nproc_per_node=2 -m pyro_vae train $COMMON --batch-size "$2" --out "$OUT/p$1_b$2" 2>/dev/null; fi
  echo "processes $1 x batch $2: seconds per epoch $(tail -n +2 "$OUT/p$1_b$2/history.csv" | cut -d, -f6 | xargs printf '%.2f ')"
done
$TR --standalone --nproc_per_node=2 scripts/allreduce_time.py 2>/dev/null
