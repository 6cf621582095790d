"""Every recipe's paper profile names a source for each of its settings, and the source table shows them."""
from __future__ import annotations

import importlib

import pytest

from rerank_lib import settings

# (module, its paper profile's PROFILES name, its sources' name, its gaps' name, its config function)
RECIPES = [
    ("rerank_lib.recipes.cross_encoder", "PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.hopweaver", "PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.llm_reranker.settings", "PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.inranker.settings", "PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.rankllm.settings", "PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.retriever_training.settings", "FAIRE_PROFILES", "PAPER_SOURCES", "PAPER_GAPS", "config"),
    ("rerank_lib.recipes.retriever_training.settings", "SCIFACT_PROFILES", "SCIFACT_PAPER_SOURCES",
     "SCIFACT_PAPER_GAPS", "scifact_config"),
]


@pytest.mark.parametrize("module,profiles,sources,gaps,config", RECIPES,
                         ids=[f"{r[0].split('.')[2]}-{r[1]}" for r in RECIPES])
def test_every_paper_setting_has_a_source_and_the_table_shows_it(module, profiles, sources, gaps, config):
    mod = importlib.import_module(module)
    paper, src, gap_list = getattr(mod, profiles)["paper"], getattr(mod, sources), getattr(mod, gaps)
    assert set(src) == set(paper), (f"no source for {sorted(set(paper) - set(src))}; "
                                    f"not a paper setting: {sorted(set(src) - set(paper))}")
    assert all(isinstance(v, str) and len(v) > 10 for v in src.values())
    for gap in gap_list:
        assert set(gap) == {"setting", "published", "why"} and all(gap.values())
    make = getattr(mod, config)
    paper_cfg = make("paper")
    table = settings.source_table(paper_cfg, paper_cfg, src, gap_list)
    assert list(table.columns) == ["value", "source"] and len(table) == len(src) + len(gap_list)
    for path in src:
        assert table.loc[path, "source"] == src[path]
    assert [table.loc[g["setting"], "value"] for g in gap_list] == [f"not applied (published: {g['published']})"
                                                                   for g in gap_list]
    # another profile: only the settings that differ from the paper profile, beside the paper value
    default = make("default")
    diff = settings.source_table(default, paper_cfg, src, gap_list)
    assert list(diff.columns) == ["value", "paper value", "source"] and len(diff) > 0
    for path in diff.index:
        assert settings.value_at(default, path) != settings.value_at(paper_cfg, path)


def test_source_table_by_hand():
    from dataclasses import dataclass, field

    from rerank_lib.settings import Settings, resolve_profile
    from rerank_lib.training import TrainConfig

    @dataclass(frozen=True)
    class Cfg(Settings):
        profile: str = "default"
        depth: int = 20
        sizes: tuple = (1, 2)
        train: TrainConfig = field(default_factory=TrainConfig)

    profiles = {"paper": {"depth": 100, "train.learning_rate": 5e-6}}
    sources = {"depth": "paper section 4", "train.learning_rate": "repo/train.sh line 3"}
    gaps = [{"setting": "optimizer", "published": "AdamW8bit", "why": "no such option"}]
    paper = resolve_profile(Cfg(), profiles, "paper", {})
    table = settings.source_table(paper, paper, sources, gaps)
    assert table.to_dict("index") == {
        "depth": {"value": 100, "source": "paper section 4"},
        "train.learning_rate": {"value": 5e-6, "source": "repo/train.sh line 3"},
        "optimizer": {"value": "not applied (published: AdamW8bit)", "source": "no such option"}}
    overridden = resolve_profile(Cfg(), profiles, "paper", {"depth": 50})
    assert settings.source_table(overridden, paper, sources).loc["depth"].tolist() == [
        50, "override (paper profile: 100); paper section 4"]
    default = resolve_profile(Cfg(), profiles, "default", {"sizes": (3,)})
    assert settings.source_table(default, paper, sources).to_dict("index") == {
        "depth": {"value": 20, "paper value": 100, "source": "paper section 4"},
        "sizes": {"value": "[3]", "paper value": "[1, 2]",
                  "source": "not set by the paper profile (the dataclass default)"},
        "train.learning_rate": {"value": 2e-5, "paper value": 5e-6, "source": "repo/train.sh line 3"}}
