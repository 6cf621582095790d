"""Training under `accelerate launch` from a notebook, applied to every `@RECIPE.training_step` (recipes/recipe.py).

A recipe config's `launch` setting names an accelerate config (a file, or a name in configs/accelerate/). The
first training call of the notebook then runs `accelerate launch --config_file ... -m rerank_lib.train PIPELINE
--config <these settings>` as a subprocess, streaming its output into the cell; that command trains every run of
the pipeline in N processes and ends each with a checkpoint. The notebook's own call of the training function
then finds each run finished in the same run folder (same data and settings) and only loads the selected
weights, so the notebook evaluates what the processes trained, in one process.
"""
from __future__ import annotations

import codecs
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from ..paths import PROJECT_ROOT, results_dir as resolve_results
from ..settings import paths, snapshot
from ..experiment.run_dir import fingerprint, jsonable

LAUNCHED_ENV = "RERANK_LAUNCHED"  # set in the launched command's processes: they train where they are
_launched: set[str] = set()  # the settings this process has already launched (one launch trains every run)


def accelerate_config(name: str) -> Path:
    """`name` as a file, else configs/accelerate/<name>[.yaml] of the project."""
    for path in (Path(name), PROJECT_ROOT / "configs" / "accelerate" / name,
                 PROJECT_ROOT / "configs" / "accelerate" / f"{name}.yaml"):
        if path.is_file():
            return path.resolve()
    known = sorted(p.stem for p in (PROJECT_ROOT / "configs" / "accelerate").glob("*.yaml"))
    raise FileNotFoundError(f"launch: no accelerate config {name!r} (a file, or one of {known})")


def flat_settings(cfg) -> dict:
    """Every setting of `cfg` by its dotted path (`paths`), as plain YAML values (what `--config` takes)."""
    values = jsonable(snapshot(cfg))
    out = {}
    for path in paths(cfg):
        value = values
        for part in path.split("."):
            value = value[part]
        out[path] = value
    return out


def launch_settings(cfg, config_fn: Callable) -> dict:
    """The settings that make `config_fn(cfg.profile, **them)` give back `cfg` (but its `launch`): those that
    differ from the profile's, less what the recipe derives (a stage's seed equal to `seed`, an output_dir)."""
    mine, base = flat_settings(cfg), flat_settings(config_fn(cfg.profile))
    derived = {p for p, v in mine.items() if p.endswith(".output_dir") or (p.endswith(".seed") and v == mine["seed"])}
    given = {p: v for p, v in mine.items() if p not in derived | {"profile", "launch"} and v != base.get(p)}
    again = flat_settings(config_fn(cfg.profile, **given))
    differ = sorted(p for p in mine if p != "launch" and again.get(p) != mine[p])
    if differ:
        raise ValueError(f"launch: the settings {differ} cannot be handed to the launched command")
    return given


def settings_yaml(pipeline: str, cfg, config_fn: Callable, path: Path) -> Path:
    """The train command's --config file of `cfg`: pipeline, profile and the settings it overrides."""
    doc = {"pipeline": pipeline, "profile": cfg.profile, "settings": launch_settings(cfg, config_fn)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def launch_command(pipeline: str, config_file: Path, settings_file: Path, results_dir) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "rerank_lib.train", pipeline, "--config", str(settings_file), "--results-dir", str(results_dir),
            "--precision", "auto"]  # the notebook's own precision settings (the command line's default is fp32)


def stream(command: list[str], env: dict) -> None:
    """Run `command`, copying its output (progress bars included) to ours as it comes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          cwd=PROJECT_ROOT) as proc:
        while chunk := proc.stdout.read1(4096):
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
    if proc.returncode:
        raise RuntimeError(f"`{' '.join(command)}` exited with status {proc.returncode} (its output is above)")


def train_launched(pipeline: str, cfg, config_fn: Callable, results_dir=None) -> bool:
    """When `cfg.launch` names an accelerate config and this process is not itself launched: train the whole
    pipeline under `accelerate launch` (once per settings) and return True; the caller then runs its training
    function as usual, which finds the finished run. False: train here. config_fn: the recipe's
    `config(profile, **overrides)`, which the command calls with these settings. results_dir: where the
    pipeline's inputs (first-stage runs) and outputs are (default: paths.results_dir())."""
    if not getattr(cfg, "launch", None) or os.environ.get(LAUNCHED_ENV) or int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return False
    config_file, results_dir = accelerate_config(cfg.launch), resolve_results(results_dir)
    key = fingerprint([pipeline, flat_settings(cfg), str(results_dir)])
    if key in _launched:
        return True
    with tempfile.TemporaryDirectory(prefix="rerank-launch-") as tmp:
        settings_file = settings_yaml(pipeline, cfg, config_fn, Path(tmp) / "settings.yaml")
        path = os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env = {**os.environ, LAUNCHED_ENV: "1", "PYTHONPATH": path}
        stream(launch_command(pipeline, config_file, settings_file, results_dir), env)
    _launched.add(key)
    return True
