"""A pipeline is one `Recipe`: its settings, profiles (a YAML file), training stages, shell flags and steps.

The notebook calls the recipe module's steps in order; `python -m rerank_lib.train NAME` runs `training`, built from
the same steps; `config()` is one rule for every pipeline:

    dataclass defaults <- the YAML's `default` profile <- the chosen profile <- the caller's overrides

then the seed rule: `seed` seeds the data split and every stage's training (`<stage>.seed`) unless the profile or
the caller sets that stage's own seed. `seeds` (two or more training seeds; empty: just `seed`) trains each trained
row once per seed: `Recipe.seeded(cfg)` gives one config per seed with every stage's seed set to it (the data split
stays on `seed`), each run is selected on dev as usual, and the row's one record holds the mean over seeds
(experiment.record_run). A recipe whose steps do not train per seed (`Recipe.multi_seed` False) refuses `seeds`.
A step decorated with `@RECIPE.training_step` first hands the whole pipeline to `accelerate launch` when
`cfg.launch` names a config (recipes/launch.py), so no step has to remember it.
"""
from __future__ import annotations

import functools
import inspect
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..paper_profiles import SettingsFile, paper_profile
from ..settings import PAPER_TINY, PROFILES, Settings, override, profile_values, resolve_profile, source_table


@dataclass(frozen=True)
class RecipeSettings(Settings):
    """What every pipeline's settings hold first: the profile, the seed (its data split and every stage's training,
    Recipe.config), the training seeds of its trained rows (empty: `seed` alone) and the data root."""

    profile: str = "default"
    seed: int = 13
    seeds: tuple[int, ...] = ()
    data_root: str | None = None


def dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's settings by dotted path (`{"train": {"seed": 3}}` -> `{"train.seed": 3}`), None dropped."""
    out = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in dotted(value).items()})
        elif value is not None:
            out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def profile_file(name: str, settings: type, yaml: Path | None) -> SettingsFile:
    return paper_profile(name, settings(), yaml)


@dataclass(frozen=True)
class Recipe:
    name: str  # the shell sub-command and recipes/paper_profiles/<name>.yaml
    notebook: str  # its notebook's name in notebooks/ (or a .ipynb path)
    settings: type  # its Settings dataclass
    stages: tuple[str, ...] = ()  # its TrainConfigs by dotted path
    flags: Mapping[str, str] = field(default_factory=dict)  # pipeline flags (--model_name_or_path) -> setting
    derived: Mapping[str, str] = field(default_factory=dict)  # settings the recipe sets itself -> what to set instead
    steps: tuple[str, ...] = ()  # the module's step functions in the notebook's order
    training: Callable | None = None  # (cfg, results_dir, evaluate) -> {label: Trained}: the shell's run
    check: Callable | None = None  # (cfg, overrides) -> cfg: the recipe's own validation of a resolved config
    coded: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # profile values that are code, not data
    yaml: Path | None = None  # its profiles (default: the packaged recipes/paper_profiles/<name>.yaml)
    multi_seed: bool = False  # its training steps train once per training seed of `cfg.seeds` (Recipe.seeded)

    @property
    def file(self) -> SettingsFile:
        """Its YAML file, read once per process (a package's RECIPE with its shell training added shares it)."""
        return profile_file(self.name, self.settings, self.yaml)

    @property
    def notebook_file(self) -> Path:
        """notebooks/<notebook>.ipynb of the project, or `notebook` itself when it names a .ipynb file."""
        from ..paths import PROJECT_ROOT

        path = Path(self.notebook)
        return path if path.suffix == ".ipynb" else PROJECT_ROOT / "notebooks" / f"{self.notebook}.ipynb"

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        """Each profile's own values as its YAML section gives them (with `coded` values added)."""
        return {name: {**values, **self.coded.get(name, {})} for name, values in self.file.all_profiles().items()}

    @property
    def references(self) -> dict:
        """The published numbers the records show beside ours (the file's `references:`)."""
        return self.file.references

    @property
    def claims(self) -> list[dict]:
        """The papers' claims its records test, each with its source and rows a vs b (the file's `claims:`)."""
        return self.file.claims

    @property
    def gaps(self) -> list[dict[str, str]]:
        """Published settings the code cannot apply, each with why (the file's `gaps:`)."""
        return self.file.gaps

    def values(self, profile: str) -> dict[str, Any]:
        """What a profile sets: the `default` profile, then the chosen one (paper-tiny: paper, then its overlay)."""
        profiles = self.profiles
        chosen = profile_values(profiles, profile) if profile != "default" else {}
        return {**profiles["default"], **chosen}

    def config(self, profile: str = "default", **overrides):
        """The settings of `profile` with `overrides` (dotted paths or nested mappings); see the module's rule."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
        given = dotted(overrides)
        for key in given:
            if key in self.derived:
                raise ValueError(f"{key} is set by the recipe: set {self.derived[key]} instead")
        values = self.values(profile)
        cfg = resolve_profile(self.settings(), {"paper" if profile == PAPER_TINY else profile: values}, profile,
                              overrides)
        named = set(given) | set(values)
        cfg = override(cfg, {f"{s}.seed": cfg.seed for s in self.stages if f"{s}.seed" not in named})
        self.check_seeds(cfg)
        return self.check(cfg, overrides) if self.check else cfg

    def check_seeds(self, cfg) -> None:
        """`seeds`: empty, or two or more distinct training seeds, for a recipe whose training steps use them."""
        if not getattr(cfg, "seeds", ()):  # settings not derived from RecipeSettings have none
            return
        if not self.multi_seed:
            raise ValueError(f"seeds: the {self.name} pipeline trains one seed per run (set `seed`); training over "
                             f"several seeds ({list(cfg.seeds)}) is not implemented for it")
        if len(cfg.seeds) < 2 or len(set(cfg.seeds)) != len(cfg.seeds):
            raise ValueError(f"seeds: expected two or more distinct training seeds (one seed: set `seed`), got "
                             f"{list(cfg.seeds)}")

    def seeded(self, cfg) -> list:
        """One config per training run of a trained row: `cfg` itself without `seeds`, else `cfg` with every
        stage's seed set to each seed of `seeds` in turn (the data split stays on `seed`)."""
        if not getattr(cfg, "seeds", ()):
            return [cfg]
        return [override(cfg, {f"{stage}.seed": seed for stage in self.stages}) for seed in cfg.seeds]

    def sources(self, cfg):
        """The settings of `cfg` beside their published sources (settings.source_table against the paper profile)."""
        return source_table(cfg, self.config("paper"), self.file.sources, self.gaps)

    def training_step(self, fn: Callable) -> Callable:
        """A step that trains: with `cfg.launch`, the whole pipeline trains under `accelerate launch` first (once per
        settings) and the step then finds its runs finished. The step takes `cfg` and may take `results_dir`."""
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def step(*args, **kwargs):
            from .launch import train_launched

            bound = signature.bind(*args, **kwargs)
            train_launched(self.name, bound.arguments["cfg"], self.config, bound.arguments.get("results_dir"))
            return fn(*args, **kwargs)
        return step


def is_main() -> bool:
    from ..training import process_state  # torch: imported once a pipeline runs, not to parse a command line

    return process_state().is_main_process


def main_first():
    """Data preparation and file writing: the main process first, then the others (which find it done)."""
    from ..training import process_state

    return process_state().main_process_first()


@dataclass(frozen=True)
class Trained:
    """A run's dev-selected model and how to write it as a folder its loader reads (--output_dir)."""

    selected: object  # experiment.Selected
    kind: str  # export.USAGE's kinds, or run-folder
    write: Callable[[Path], object]  # write(folder): the complete folder (weights, tokenizer, settings)

    @classmethod
    def cross_encoder(cls, selected, ranker) -> "Trained":
        """sentence-transformers' CrossEncoder(folder): weights, tokenizer, max length (and our settings file)."""
        from ..export import export_cross_encoder

        return cls(selected, "cross_encoder", lambda folder: export_cross_encoder(ranker, folder))

    @classmethod
    def bi_encoder(cls, selected, encoder) -> "Trained":
        """SentenceTransformer(folder): Transformer (tokenizer, max length), Pooling, Normalize, prompts."""
        from ..export import export_bi_encoder

        return cls(selected, "bi_encoder", lambda folder: export_bi_encoder(encoder, folder))

    @classmethod
    def monot5(cls, selected, cfg) -> "Trained":
        """inranker's T5Ranker(folder) for a T5-vocabulary student; else the checkpoint as saved (our T5Ranker)."""
        def write(folder):
            from ..export import export_monot5, has_t5_vocabulary
            from ..rerankers.monot5 import T5Ranker

            ranker = T5Ranker(str(selected.model_dir), max_length=cfg.max_length, device="cpu", bf16=False)
            if has_t5_vocabulary(ranker):
                return export_monot5(ranker, folder)
            return shutil.copytree(selected.model_dir, folder)
        return cls(selected, "monot5", write)

    @classmethod
    def listwise(cls, selected, base: str, chat_template: str | None) -> "Trained":
        """A causal-LM folder with its tokenizer and chat template (transformers, rank_llm)."""
        def write(folder):
            from ..export import export_listwise
            from ..models import load_chat_lm

            model, tokenizer = load_chat_lm(str(selected.model_dir), chat_template, device="cpu",
                                            tokenizer_from=base)
            return export_listwise(model, tokenizer, folder, chat_template=chat_template)
        return cls(selected, "listwise", write)

    @classmethod
    def llm_reranker(cls, selected, ranker) -> "Trained":
        """The folder its peer loads: 'llm_yes' (FlagLLMReranker) or 'llm_score' (RAG-Retrieval's LLMDecoder)."""
        from ..export import export_llm_reranker, llm_export_kind

        return cls(selected, llm_export_kind(ranker), lambda folder: export_llm_reranker(ranker, folder))

    @classmethod
    def run_folder(cls, selected, base: str) -> "Trained":
        """No peer format (a score head, LoRA weights): the checkpoint as saved, which loads onto `base`."""
        return cls(selected, f"run-folder (loads onto {base})", lambda folder: shutil.copytree(selected.model_dir, folder))
