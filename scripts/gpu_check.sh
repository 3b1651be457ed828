#!/usr/bin/env bash
# On a machine with a CUDA GPU (at most ~5 minutes): the `cuda` tests, then the training-step and
# K=5000 evaluation ratios against the hand-written reference on the GPU. Run from the repository
# root with the project's environment active (pip install -e .[dev]):  bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device here'; print(torch.cuda.get_device_name(0))"
$PY -m pytest tests -m cuda -q -p no:cacheprovider
timeout 240 $PY scripts/benchmark_speed.py --device cuda --objectives meanfield,jit-meanfield --particles 1 \
    --rounds 7 --eval-rounds 3 --eval-images 200
