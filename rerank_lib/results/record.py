"""The one result record every notebook writes, so one table can compare every method across pipelines.

A record is a flat JSON file under `<results>/records/<profile>/`, one per (pipeline, method, dataset, split).
It carries what a reader needs to trust a number: the measures, the published reference beside it, which
queries the method was trained on, and the commit, package versions and hardware that produced it.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_json
from ..data.errors import DataFormatError
from ..paths import PROJECT_ROOT
from ..models.standin import replaced_ids

#: The fields of a row trained over several seeds, absent from a single run's file.
SEEDED = ("seeds", "per_seed")
#: A row's cost beside `wall_s`, absent from the file when not measured (a first stage has no reranking latency).
COST = ("latency_s_per_query", "train_s")
# distribution name -> key in Record.versions
_PACKAGES = {
    "torch": "torch", "transformers": "transformers", "accelerate": "accelerate", "ir-measures": "ir_measures",
    "bm25s": "bm25s", "sentence-transformers": "sentence_transformers", "numpy": "numpy",
}


@dataclass
class Record:
    """One method's result on one dataset split. `metrics` keys are ir-measures names (e.g. 'nDCG@10').

    `reference` holds published numbers on the same 0-1 scale: {measure: {"value": 0.7376, "source": "..."}}.
    `significance` holds tests against other methods: {vs_name: {measure: {"delta": d, "p_value": p}}} where
    delta = this - vs. `per_query` is a path relative to the results folder (see write_record).

    Cost, in wall seconds on the machine in `hardware`: `wall_s` is what making the row took (its training, every
    seed's, and its test scoring); a reranker's `latency_s_per_query` is the test reranking of its `depth`
    candidates per query, nothing read from a cache (with several seeds: the mean over seeds); a trained row's
    `train_s` is one training run's, dev evaluations included (the mean over seeds). A `+interp` row carries its
    model's (experiment.Row).
    """

    pipeline: str
    method: str
    dataset: str
    split: str
    metrics: dict[str, float | None]
    model: str = ""
    first_stage: str = ""
    depth: int | None = None
    per_query: str | None = None
    significance: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_queries: str = "none (zero-shot)"
    n_training_queries: int | None = None
    profile: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    seeds: list[int] = field(default_factory=list)
    per_seed: dict[str, list[float | None]] = field(default_factory=dict)
    git_commit: str = "unknown"
    versions: dict[str, str | None] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None
    latency_s_per_query: float | None = None
    train_s: float | None = None
    created: str = ""

    @property
    def stem(self) -> str:
        """File name stem: <pipeline>__<method>__<dataset>_<split>, sanitised for every file system."""
        return f"{_safe(self.pipeline)}__{_safe(self.method)}__{_safe(self.dataset)}_{_safe(self.split)}"

    def to_dict(self) -> dict:
        """The record as JSON; a single run's file carries no `seeds` / `per_seed`, a row without a measured cost no
        `latency_s_per_query` / `train_s` (it reads as it always did)."""
        data = _json_safe(asdict(self))
        return {k: v for k, v in data.items() if not (k in SEEDED and not v or k in COST and v is None)}

    def sd(self, measure: str) -> float | None:
        """The sample standard deviation over training seeds of `measure`'s test value; None for a single run
        (or a seed without the value)."""
        values = self.per_seed.get(measure) or []
        if len(values) < 2 or any(v is None for v in values):
            return None
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike = "<record>") -> "Record":
        """Validate and build; a problem raises DataFormatError naming the source file and the field."""
        return cls(**_validate(data, str(source)))


# ---------------------------------------------------------------------------------------------- provenance


def git_commit(root: str | os.PathLike = PROJECT_ROOT) -> str:
    """HEAD of the project checkout, '-dirty' when tracked code differs from it, 'unknown' outside git.

    Changes under results/ do not count: regenerating the results rewrites them, and the record is about the
    code that produced it."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        head = subprocess.run([git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        status = subprocess.run([git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"], cwd=root,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = head.stdout.strip()
    return commit + ("-dirty" if status.returncode != 0 or status.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    """Installed versions (None when absent), read from package metadata so nothing heavy gets imported."""
    from .. import __version__

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist, key in _PACKAGES.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    versions["rerank_lib"] = __version__
    return versions


def hardware_info() -> dict[str, Any]:
    """CPU model and cores, GPU name (None without one), torch threads and `native_bf16` (None when torch was not
    used). `native_bf16` says what the default precision 'auto' ran: bf16 autocast where the hardware computes bf16
    natively (a GPU with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere; numbers differ between the two.
    `precision` is what the precision setting in effect ran ('fp32' | 'bf16'; models.compute_dtype: 'auto' in the
    notebooks, the command's --precision from the shell)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    gpu, threads, native_bf16, precision = None, None, None, None
    torch = sys.modules.get("torch")  # only ask torch when the pipeline already imported it
    if torch is not None:
        from ..models import compute_dtype, pick_dtype, precision_name

        threads = torch.get_num_threads()
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
        native_bf16 = pick_dtype(prefer="bf16") == torch.bfloat16  # the one place that decides what 'auto' runs
        precision = precision_name(compute_dtype())  # what the precision setting ran: 'fp32' or 'bf16'
    elif shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            gpu = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "cpu_usable": usable, "gpu": gpu, "torch_threads": threads,
            "native_bf16": native_bf16, "precision": precision, "platform": platform.platform()}


def make_record(pipeline: str, method: str, dataset: str, split: str, metrics: dict[str, float],
                **fields_: Any) -> Record:
    """A Record with git commit, versions, hardware and creation time filled in (any can be overridden)."""
    if "git_commit" not in fields_:
        fields_["git_commit"] = git_commit()
    fields_.setdefault("versions", package_versions())
    fields_.setdefault("hardware", hardware_info())
    fields_.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    standins = replaced_ids({"model": fields_.get("model"), "params": fields_.get("params")}) \
        if fields_.get("profile") == "paper-tiny" else {}
    if standins:  # paper-tiny: say which tiny stand-ins replaced the paper's models
        fields_["params"] = {**(fields_.get("params") or {}), "standins": standins}
    data = {"pipeline": pipeline, "method": method, "dataset": dataset, "split": split,
            "metrics": {k: (None if v is None else float(v)) for k, v in metrics.items()}, **fields_}
    return Record.from_dict(_json_safe(data), source="make_record()")


# ---------------------------------------------------------------------------------------------- files


def record_path(record: Record, results_dir: str | os.PathLike) -> Path:
    return Path(results_dir) / "records" / _safe(record.profile) / f"{record.stem}.json"


def write_record(record: Record, results_dir: str | os.PathLike, per_query=None) -> Path:
    """Write the record atomically; with a per-query DataFrame, write it as CSV beside it and link it.

    The file name carries pipeline, method, dataset and split (not the model), so name methods by variant
    ('monot5-base', 'monot5-3b') when one pipeline compares models: a second write replaces the first.
    """
    path = record_path(record, results_dir)
    if per_query is not None:
        pq_path = path.with_name(f"{record.stem}.per_query.csv")
        long = {"qid", "measure", "value"} <= set(per_query.columns)
        with atomic_open(pq_path, "w") as handle:
            per_query.to_csv(handle, index=not long, index_label=None if long else "qid", lineterminator="\n")
        record.per_query = pq_path.relative_to(Path(results_dir)).as_posix()
    Record.from_dict(record.to_dict(), source=path)  # never write a record we could not read back
    return write_json(path, record.to_dict())


def load_per_query(record: Record, results_dir: str | os.PathLike):
    """The per-query DataFrame a record links to (long format qid, measure, value, or wide by qid)."""
    import pandas as pd

    if not record.per_query:
        raise FileNotFoundError(f"record {record.stem} has no per-query file")
    path = Path(record.per_query)
    path = path if path.is_absolute() else Path(results_dir) / path
    frame = pd.read_csv(path, dtype={"qid": str})
    if "qid" in frame.columns and "measure" not in frame.columns:
        frame = frame.set_index("qid")
    return frame


def load_records(results_dir: str | os.PathLike, profile: str | None = None) -> list[Record]:
    """All records of one profile (or of every profile), sorted by pipeline, method, dataset, split."""
    base = Path(results_dir) / "records"
    pattern = f"{_safe(profile)}/*.json" if profile is not None else "*/*.json"
    records = []
    for path in sorted(base.glob(pattern)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataFormatError(path, err.lineno, None, f"not valid JSON: {err.msg}") from None
        records.append(Record.from_dict(data, source=path))
    return sorted(records, key=sort_key)


def selected_steps(record: Record) -> list[int] | None:
    """Each training seed's selected step (one entry for a single run; 0: the untrained start), None for an
    untrained row. Records name it in params as `selected_step`, `best_step` or only `selected_is_start` (a list
    of them for a row trained over several seeds): this is the one reader, so no table or verdict reads them
    differently."""
    params = record.params or {}

    def steps(value):
        values = value if isinstance(value, list) else [value]
        return values if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values) else None

    for key in ("selected_step", "best_step"):
        if steps(params.get(key)) is not None:
            return steps(params.get(key))
    flags = params.get("selected_is_start")
    flags = flags if isinstance(flags, list) else [flags]
    return [0] * len(flags) if flags and all(flag is True for flag in flags) else None


def selected_step(record: Record) -> int | None:
    """The selected step of the row (of its first training seed when there are several), None when untrained."""
    steps = selected_steps(record)
    return steps[0] if steps else None


def kept_start(record: Record) -> bool:
    """Whether a trained row's dev selection kept its untrained start (step 0) for every training seed: then it is
    its start, and supports no claim about training."""
    steps = selected_steps(record)
    return bool(steps) and all(step == 0 for step in steps)


def sort_key(record: Record) -> tuple:
    return (record.pipeline, record.method, record.dataset, record.split, record.model)


# ---------------------------------------------------------------------------------------------- validation


def _safe(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")
    return cleaned or "unnamed"


def _json_safe(obj: Any) -> Any:
    """Non-finite floats become None (strict JSON); tuples become lists; numpy scalars become Python ones."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return obj
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _validate(data: Any, source: str) -> dict:
    def fail(name: str, problem: str):
        raise DataFormatError(source, None, name, problem)

    if not isinstance(data, dict):
        fail("(record)", f"expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(Record)}
    for name in data:
        if name not in known:
            fail(name, f"unknown field (known: {', '.join(sorted(known))})")
    for name in ("pipeline", "method", "dataset", "split", "metrics"):
        if name not in data:
            fail(name, "missing required field")
    for name in ("pipeline", "method", "dataset", "split", "profile"):
        if name in data and (not isinstance(data[name], str) or not data[name].strip()):
            fail(name, f"expected a non-empty string, got {data[name]!r}")
    for name in ("model", "first_stage", "training_queries", "git_commit", "created"):
        if name in data and not isinstance(data[name], str):
            fail(name, f"expected a string, got {data[name]!r}")
    if "per_query" in data and data["per_query"] is not None and not isinstance(data["per_query"], str):
        fail("per_query", f"expected a path string or null, got {data['per_query']!r}")
    for name in ("depth", "seed", "n_training_queries"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            fail(name, f"expected an integer or null, got {value!r}")
    for name in ("wall_s", *COST):
        value = data.get(name)
        if value is not None and (not _is_num(value) or not math.isfinite(value) or value < 0):
            fail(name, f"expected a non-negative number of seconds or null, got {value!r}")
    for name in ("metrics", "significance", "reference", "params", "versions", "hardware"):
        if name in data and not isinstance(data[name], dict):
            fail(name, f"expected an object, got {type(data[name]).__name__}")
    for measure, value in data["metrics"].items():
        if value is not None and not _is_num(value):
            fail(f"metrics.{measure}", f"expected a number, got {value!r}")
    for measure, ref in data.get("reference", {}).items():
        if not isinstance(ref, dict) or not _is_num(ref.get("value")):
            fail(f"reference.{measure}", f"expected {{'value': number, 'source': str}}, got {ref!r}")
        if not isinstance(ref.get("source", ""), str):
            fail(f"reference.{measure}.source", f"expected a string, got {ref.get('source')!r}")
    for vs, per_measure in data.get("significance", {}).items():
        if not isinstance(per_measure, dict):
            fail(f"significance.{vs}", "expected {measure: {'delta': number, 'p_value': number}}")
        for measure, test in per_measure.items():
            if not isinstance(test, dict):
                fail(f"significance.{vs}.{measure}", f"expected an object, got {test!r}")
            for key in ("delta", "p_value"):
                if test.get(key) is not None and not _is_num(test.get(key)):
                    fail(f"significance.{vs}.{measure}.{key}", f"expected a number or null, got {test.get(key)!r}")
    _validate_seeds(data, fail)
    return dict(data)


def _validate_seeds(data: dict, fail) -> None:
    """`seeds`: distinct integers, at least two, the first one `seed`; `per_seed`: per measure of `metrics`, one value
    per seed whose mean is the metric."""
    seeds, per_seed = data.get("seeds", []), data.get("per_seed", {})
    if not isinstance(seeds, list) or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        fail("seeds", f"expected a list of integer training seeds, got {seeds!r}")
    if not isinstance(per_seed, dict):
        fail("per_seed", f"expected an object {{measure: [value per seed]}}, got {type(per_seed).__name__}")
    if not seeds:
        if per_seed:
            fail("per_seed", "values per seed without `seeds`: list the training seeds they belong to")
        return
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        fail("seeds", f"expected two or more distinct seeds (a single run leaves `seeds` empty), got {seeds!r}")
    if data.get("seed") != seeds[0]:
        fail("seed", f"a seeded record's `seed` is its first seed {seeds[0]}, got {data.get('seed')!r}")
    for measure, values in per_seed.items():
        if measure not in data["metrics"]:
            fail(f"per_seed.{measure}", "a measure not in `metrics`")
        if not isinstance(values, list) or len(values) != len(seeds) or any(
                v is not None and not _is_num(v) for v in values):
            fail(f"per_seed.{measure}", f"expected {len(seeds)} numbers (one per seed, in `seeds` order), got {values!r}")
        mean, metric = (sum(values) / len(values) if None not in values else None), data["metrics"][measure]
        if (mean is None) != (metric is None) or (mean is not None and abs(mean - metric) > 1e-9):
            fail(f"per_seed.{measure}", f"the mean over seeds {mean!r} is not metrics.{measure} = {metric!r}")
