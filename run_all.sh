#!/usr/bin/env bash
# Set up the environment (once) and regenerate every table and figure in results/ by running the notebooks in order.
#   bash run_all.sh                       # the embedded default profile (CPU, offline)
#   bash run_all.sh --profile smoke       # minutes: the path every notebook takes, on tiny slices
#   bash run_all.sh --only 00 01 99       # a subset, by name prefix
#   bash run_all.sh --profile paper       # the published configurations (GPU + Hugging Face hub)
#   bash run_all.sh --release             # the citable run: from a clean commit, every training run afresh
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if [ "${1:-}" = "--release" ]; then
  shift
  exec python -m rerank_lib.release "$@"
fi
exec python -m rerank_lib.runner "$@"
