#!/usr/bin/env bash
# GPU check of the paper path: each pipeline's training command under its accelerate config for a few dozen steps,
# in bf16 with sdpa attention (flash-attn when installed), on 1 GPU and (with >= 2 GPUs) on 2 GPUs at the same
# global batch; then whether 2 GPUs trained the same weights as 1, and throughput (examples/s, from the loop's own
# log). Run it on a CUDA machine from the project root, after `bash scripts/setup_env.sh` with RERANK_TORCH_SPEC set:
#
#   RERANK_TORCH_SPEC=torch bash scripts/setup_env.sh && bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Offline GPU machines have no hub: the check runs the default profile's models (MiniLM, SmolLM2, the minilm-monot5
# student; all from PyPI) with the paper profile's precision and accelerate configs. With the hub, set
# GPU_CHECK_PROFILE=paper to run the published models instead (memory permitting).
# Each run's log, train_config.json and a summary line go to OUT_DIR (default: gpu_check_out/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
PROFILE=${GPU_CHECK_PROFILE:-default}
STEPS=${GPU_CHECK_STEPS:-30}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

"$PY" - <<'PYEOF' || { echo "gpu_check: no CUDA device: nothing to check" >&2; exit 1; }
import torch
assert torch.cuda.is_available()
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
PYEOF
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")

# pipeline | accelerate config | extra settings (a few dozen steps, evaluation at the end only)
CHECKS=(
  "retriever|ddp|--set methods=[ctl] --max_steps $STEPS --bf16"
  "cross_encoder|fsdp|--set variants=[group_ce] --max_steps $STEPS --bf16"
  "inranker|ddp|--max_steps $STEPS --bf16"
  "llm_reranker|ddp|--max_steps $STEPS --bf16"
  "rankllm|deepspeed_zero3|--set objectives=[combined] --max_steps $STEPS --bf16 --gradient_checkpointing"
)

run() {  # run PIPELINE CONFIG NPROC EXTRA... -> OUT/PIPELINE-NPROC
  local pipeline=$1 config=$2 nproc=$3; shift 3
  local dir="$OUT/$pipeline-${nproc}gpu"
  rm -rf "$dir"; mkdir -p "$dir"
  local start=$(date +%s)
  # A cache of its own: the 2-GPU run must train, not find the 1-GPU run's folder finished.
  RERANK_CACHE_DIR="$dir/cache" "$PY" -m accelerate.commands.launch --config_file "configs/accelerate/$config.yaml" --num_processes "$nproc" \
      -m rerank_lib.train "$pipeline" --profile "$PROFILE" --results-dir "$dir/results" --output_dir "$dir/model" \
      "$@" > "$dir/log.txt" 2>&1
  local rc=$?
  echo "$pipeline $config ${nproc}gpu rc=$rc wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/summary.txt"
  return $rc
}

for check in "${CHECKS[@]}"; do
  IFS='|' read -r pipeline config extra <<< "$check"
  # shellcheck disable=SC2086
  run "$pipeline" "$config" 1 $extra || { tail -20 "$OUT/$pipeline-1gpu/log.txt"; continue; }
  if [ "$NGPU" -ge 2 ]; then
    # shellcheck disable=SC2086
    run "$pipeline" "$config" 2 $extra || { tail -20 "$OUT/$pipeline-2gpu/log.txt"; continue; }
  fi
done

# 2 GPUs vs 1 at the same global batch (the loop splits each global batch over the processes), and throughput.
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

import torch

out = Path(sys.argv[1])


def runs(root: Path) -> dict[str, Path]:
    """{run folder name: path} of every training run of a check (train_config.json marks one)."""
    return {p.parent.name: p.parent for p in (root / "cache" / "runs").rglob("train_config.json")}


def weights(run: Path) -> dict[str, torch.Tensor]:
    final = run / "final"
    if (final / "model.pt").exists():
        return torch.load(final / "model.pt", map_location="cpu")
    from safetensors.torch import load_file
    state = {}
    for f in sorted(final.glob("*.safetensors")):
        state.update(load_file(f))
    return state


def throughput(run: Path) -> str:
    cfg = json.loads((run / "train_config.json").read_text())
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"train"' in line]
    if len(rows) < 2:
        return "n/a"
    steps, secs = rows[-1]["step"] - rows[0]["step"], rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    return f"{steps * cfg['global_batch'] / max(secs, 1e-9):.1f} examples/s ({cfg['num_processes']} proc, {cfg['mixed_precision']})"


lines = []
for one in sorted(out.glob("*-1gpu")):
    pipeline = one.name[: -len("-1gpu")]
    two = out / f"{pipeline}-2gpu"
    for name, run1 in sorted(runs(one).items()):
        line = f"{pipeline} {name}: 1 GPU {throughput(run1)}"
        run2 = runs(two).get(name) if two.exists() else None
        if run2 is not None:
            a, b = weights(run1), weights(run2)
            diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a if k in b) if a else float("nan")
            line += f"; 2 GPUs {throughput(run2)}; max |w1 - w2| = {diff:.2e}"
        lines.append(line)
print("\n".join(lines))
(out / "comparison.txt").write_text("\n".join(lines) + "\n")
PYEOF
