#!/bin/bash
# What a session lent a GPU (the `device` tool: one NVIDIA H200, 15 minutes in all) runs, prepared in advance.
#
#   bash benchmarks/gpu_session.sh prepare    # here, before asking for the machine: wheels and data into .gpu/
#   then one device `run` call, carry [".gpu"], timeout_s 540:
#       bash benchmarks/gpu_session.sh device
#
# prepare (this machine, which can reach PyPI): the packages worldsim needs that the device image lacks,
# as Python 3.12 x86-64 wheels (the image has torch, numpy, safetensors, einops, opencv-python-headless,
# matplotlib, pandas, tqdm, httpx, ...; pip cannot reach an index there), and the shipped balls recipe's
# 32x32 collections (~35 MB), all in .gpu/ (ignored by git through .git/info/exclude; the device tool carries
# 64 MiB in all).
#
# device: installs them and worldsim into /tmp/site, then, each step's output under $OUT (what comes back):
#   1. `worldsim bench speed` of the shipped balls on CUDA (fp32: the simulator has no bf16 path yet), B up to
#      1,024: the issue on passes per frame asks for this report (commit it as benchmarks/results/speed-balls-cuda);
#   2. training throughput of the shipped sizes and of `small` on the GPU (`worldsim train ... steps=200`,
#      tokens/s in metrics.csv): what a longer GPU run of the w8 recipe (benchmarks/results/stability/recipes.md)
#      would cost at each size.
# Steps stop early, not the script, when the time is short: each is bounded by `timeout`.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

if [ "$mode" = prepare ]; then
    mkdir -p .gpu/wheels .gpu/data .git/info
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
        diffusers==0.42.1 gymnasium==1.4.0 Farama-Notifications==0.0.6 hydra-core==1.3.8 omegaconf==2.3.1 \
        stable_baselines3==2.9.2 pymunk==7.3.1 cffi==2.0.0 pycparser==2.23 pygame-ce==2.5.8 importlib_metadata==8.7.0 \
        huggingface_hub==2.4.0 || exit 1
    python -m pip wheel -q --no-deps -w .gpu/wheels antlr4-python3-runtime==4.9.3 || exit 1  # an sdist only: built here, pure Python
    for name in balls32 balls32-pushed; do
        [ -d .gpu/data/$name ] || worldsim collect world=balls scenario=all frame_size=[32,32] progress=false out=.gpu/data/$name \
            $([ $name = balls32 ] && echo "episodes=2000 stills=500" || echo "episodes=400 policy=random seed=300000") || exit 1
    done
    du -sh .gpu
    exit 0
fi

if [ "$mode" != device ]; then
    echo "usage: bash benchmarks/gpu_session.sh prepare|device" >&2
    exit 2
fi

OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, worldsim; print(torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt" || exit 1

# 1. Dream throughput on CUDA (about 3 minutes).
timeout 240 worldsim bench speed model=balls device=cuda 'sampler_steps=[1,2,4]' 'batch_sizes=[1,16,64,256,1024]' \
    'window_batch_sizes=[1,8]' progress=false out="$OUT/speed-balls-cuda" > "$OUT/speed.log" 2>&1
echo "speed: exit $?" | tee -a "$OUT/gpu.txt"

# 2. Training throughput at two sizes (200 steps each, 8-frame windows as w8, batch 64).
for size in cpu small; do
    timeout 120 worldsim train "data=[.gpu/data/balls32,.gpu/data/balls32-pushed]" model=$size train.window_lengths=[8] train.batch_size=64 train.log_every=20 steps=200 device=cuda progress=false \
        out=/tmp/train-$size > "$OUT/train-$size.log" 2>&1
    echo "train $size: exit $?" | tee -a "$OUT/gpu.txt"
    cp /tmp/train-$size/metrics.csv "$OUT/train-$size-metrics.csv" 2>/dev/null
done
