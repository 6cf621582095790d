"""Recipes: one module (or package) per pipeline, each defining its `RECIPE` (recipe.Recipe): settings, profiles,
stages, steps and the shell's training. `REGISTRY` maps a pipeline's name to it; the shell's sub-commands are its keys.
"""
from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module

from ..paper_profiles import PAPER_PROFILES

#: the pipelines whose RECIPE is not defined in recipes/<name>.py (or a package of that name)
ELSEWHERE = {"retriever": "retriever_training", "retriever_scifact": "retriever_training.scifact"}
#: every pipeline (one YAML file each in recipes/paper_profiles/) -> the module defining its RECIPE, imported on first
#: use (a recipe imports torch; --help does not)
MODULES = {path.stem: ELSEWHERE.get(path.stem, path.stem) for path in sorted(PAPER_PROFILES.glob("*.yaml"))}


class Registry(Mapping):
    """name -> Recipe; `register` adds one (a test's example pipeline)."""

    def __init__(self, modules: Mapping[str, str]):
        self.modules = dict(modules)
        self.extra = {}

    def __getitem__(self, name):
        if name in self.extra:
            return self.extra[name]
        if name not in self.modules:
            raise KeyError(f"no pipeline {name!r}; pipelines: {', '.join(self)}")
        return import_module(f"{__name__}.{self.modules[name]}").RECIPE

    def __iter__(self):
        return iter([*self.modules, *self.extra])

    def __len__(self):
        return len(self.modules) + len(self.extra)

    def register(self, recipe) -> None:
        self.extra[recipe.name] = recipe

    def unregister(self, name: str) -> None:
        self.extra.pop(name, None)


REGISTRY = Registry(MODULES)


def get(name: str):
    """The Recipe of the pipeline `name`."""
    return REGISTRY[name]
