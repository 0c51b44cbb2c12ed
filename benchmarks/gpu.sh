#!/usr/bin/env bash
# The GPU checks in one command: the device tests on CUDA (float32 and
# float64), then the GPU benchmark rows (benchmarks/gpu.py), whose JSON goes
# to benchmarks/results/ (or to the folder given as --out). Arguments are
# passed to gpu.py: `bash benchmarks/gpu.sh --quick` is a smoke run.
# Prepared to finish in a few minutes on one H200.
set -uo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || exit 1
python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -k cuda
tests=$?
python3 benchmarks/gpu.py "$@"
bench=$?
echo "device tests rc=$tests, benchmarks rc=$bench"
exit $(( tests != 0 || bench != 0 ))
