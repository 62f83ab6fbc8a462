#!/usr/bin/env bash
# One short check of the training job on a GPU node (about 6 minutes on one H100 before the
# bench_train step was added, venv included; that step is bounded by 150 + 150 + 300 s and the
# GPU tests by 420 s; neither has run on a GPU yet, so the total is not measured):
#   1. nvidia-smi and what torch sees;
#   2. a brief `torchrun -m training` (the `make train` command line) with nccl on every GPU,
#      bf16 autocast and channels-last;
#   3. throughput: plain fp32 recipe vs fp32 defaults vs bf16 + channels-last (same run);
#   4. benchmarks/bench_train.py, each recipe in its own process under a timeout, into one JSON
#      (BENCH_JSON, default bench_train_gpu.json): (a) the seed's recipe, (b) the default
#      recipe (--input canvas, batched loss, bf16, channels-last), (c) (b) + --compile
#      (its own, longer timeout: compilation happens in its warmup);
#   5. the GPU tests (pytest -m gpu), among them --compile's one-graph-set-per-canvas check.
# On a fresh machine it first creates .venv with torch==2.14.1 torchvision==0.29.1 and the
# project's runtime dependencies (not the dev extra: no ansible or molecule are needed here).
#
#   benchmarks/gpu_check.sh            (VENV=path to use another venv)
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
status=0
step() { printf '\n===== %s\n' "$*"; }

step "nvidia-smi"
nvidia-smi || { echo "no nvidia-smi: not a GPU node"; exit 1; }
ngpu=$(nvidia-smi -L | grep -c '^GPU')

step "venv ($venv)"
if ! "$venv/bin/python" -c "import torch, torchvision, pycocotools, tensorboard, pytest" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e . pytest
fi
"$venv/bin/python" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    print(f"  cuda:{i}", torch.cuda.get_device_name(i), "bf16", torch.cuda.is_bf16_supported())
PY

step "train briefly: $ngpu GPU(s), nccl, bf16 autocast, channels-last"
out=$(mktemp -d)
TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 timeout 240 "$venv/bin/torchrun" --standalone --nnodes=1 \
  --nproc-per-node="$ngpu" -m training --epochs 1 --train-size 2048 --val-size 128 --amp \
  --channels-last --progress log --log-every 16 --output-dir "$out" --resume none || status=1
cat "$out/metrics.jsonl" 2>/dev/null
rm -rf "$out"

step "throughput: plain fp32 vs defaults vs bf16 + channels-last"
timeout 300 "$venv/bin/python" benchmarks/bench_training.py --device cuda --train-size 1024 || status=1

step "bench_train: (a) seed recipe and (b) default recipe, one process each part, one JSON"
json=${BENCH_JSON:-bench_train_gpu.json}
bench_dir=$(mktemp -d)
for part in a b c; do
  limit=150; [ "$part" = c ] && limit=300
  timeout "$limit" "$venv/bin/python" benchmarks/bench_train.py --device cuda --only "$part" \
    --json "$bench_dir/$part.json" || { echo "bench_train part $part failed or timed out"; status=1; }
done
"$venv/bin/python" - "$bench_dir" "$json" <<'PY'
import json, pathlib, sys
parts = {p.stem: json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))}
out = {"parts": parts}
for key in "bc":
    if {"a", key} <= parts.keys():
        ratio = parts[key]["runs"][0]["img_per_s"] / parts["a"]["runs"][0]["img_per_s"]
        out[f"ratio_{key}_over_a"] = ratio
        print(f"ratio ({key})/(a): {ratio:.2f}x")
pathlib.Path(sys.argv[2]).write_text(json.dumps(out, indent=2))
print("wrote", sys.argv[2])
PY
rm -rf "$bench_dir"

step "GPU tests"
timeout 420 "$venv/bin/python" -m pytest -q -p no:cacheprovider -m gpu training/tests/test_gpu.py \
  || status=1

step "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
