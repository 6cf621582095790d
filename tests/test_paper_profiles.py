"""Every recipe's paper profile names a source for each of its settings, and the source table shows them."""
from __future__ import annotations

import pytest

from rerank_lib import recipes, settings

@pytest.mark.parametrize("name", list(recipes.REGISTRY))
def test_every_paper_setting_has_a_source_and_the_table_shows_it(name):
    recipe = recipes.get(name)
    paper, src, gap_list = recipe.profiles["paper"], recipe.file.sources, recipe.gaps
    assert set(src) == set(paper), (f"no source for {sorted(set(paper) - set(src))}; "
                                    f"not a paper setting: {sorted(set(src) - set(paper))}")
    assert all(isinstance(v, str) and len(v) > 10 for v in src.values())
    for gap in gap_list:
        assert set(gap) == {"setting", "published", "why"} and all(gap.values())
    make = recipe.config
    paper_cfg = make("paper")
    table = recipe.sources(paper_cfg)
    assert list(table.columns) == ["value", "source"] and len(table) == len(src) + len(gap_list)
    for path in src:
        assert table.loc[path, "source"] == src[path]
    assert [table.loc[g["setting"], "value"] for g in gap_list] == [f"not applied (published: {g['published']})"
                                                                   for g in gap_list]
    # another profile: only the settings that differ from the paper profile, beside the paper value
    default = make("default")
    diff = recipe.sources(default)
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


# ------------------------------------------------------------------ the settings-file reader (paper_profiles)

KNOWN = {"depth", "sizes", "mapping", "stage1.train.learning_rate", "stage1.train.seed", "stage2.train.learning_rate",
         "stage2.train.seed"}
GOOD = """\
# a comment
pipeline: demo
profile: paper
settings:
  depth:
    value: 100
    source: >-
      paper section 4,
      table 2
  sizes: [1, 2]
  mapping: {a: 1}
  stage1.train: &stage
    learning_rate: {value: 1e-5, source: repo/train.sh line 3}
    seed: {value: 42, source: the HF default}
  stage2.train: *stage
gaps:
  - setting: optimizer
    published: AdamW8bit
    why: no such option
"""


def _file(tmp_path, text, name="demo.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_settings_file_by_hand(tmp_path):
    from rerank_lib import paper_profiles

    doc = paper_profiles.read(_file(tmp_path, GOOD), KNOWN)
    assert (doc.pipeline, doc.profile) == ("demo", "paper")
    assert doc.values == {"depth": 100, "sizes": [1, 2], "mapping": {"a": 1}, "stage1.train.learning_rate": 1e-5,
                          "stage1.train.seed": 42, "stage2.train.learning_rate": 1e-5, "stage2.train.seed": 42}
    assert isinstance(doc.values["stage1.train.learning_rate"], float)  # YAML 1.1 reads 1e-5 as text
    assert doc.sources == {"depth": "paper section 4, table 2", "stage1.train.learning_rate": "repo/train.sh line 3",
                           "stage1.train.seed": "the HF default", "stage2.train.learning_rate": "repo/train.sh line 3",
                           "stage2.train.seed": "the HF default"}
    assert doc.lines == {"depth": 5, "sizes": 10, "mapping": 11, "stage1.train.learning_rate": 13,
                         "stage1.train.seed": 14, "stage2.train.learning_rate": 13, "stage2.train.seed": 14}
    assert doc.gaps == [{"setting": "optimizer", "published": "AdamW8bit", "why": "no such option"}]


@pytest.mark.parametrize("text,message", [
    (GOOD.replace("    seed: {value: 42", "    sed: {value: 42"), r"unknown setting 'stage1.train.sed' in \S+demo.yaml, line 14"),
    (GOOD.replace("  sizes: [1, 2]", "  size: [1, 2]"), r"unknown setting 'size' in \S+demo.yaml, line 10"),
    (GOOD.replace("  sizes: [1, 2]", "  sizes: [1, 2"), r"demo.yaml, line 11: not YAML"),
    (GOOD.replace("  mapping: {a: 1}", "  depth: 3"), r"demo.yaml, line 11: .*'depth' .* twice"),
    (GOOD.replace("    why: no such option\n", ""), r"demo.yaml, line 17: a gap holds setting, published, why"),
    (GOOD.replace("gaps:", "gap:"), r"demo.yaml, line 16: unknown top-level key 'gap'"),
    (GOOD.replace("    source: >-\n      paper section 4,\n      table 2\n", "    source: 3\n"),
     r"demo.yaml, line 7: setting 'depth': its source must be text"),
    ("- a\n- b\n", r"demo.yaml, line 1: a settings file must be a mapping"),
])
def test_a_bad_settings_file_names_the_file_line_and_key(tmp_path, text, message):
    from rerank_lib import paper_profiles

    with pytest.raises(paper_profiles.SettingsFileError, match=message):
        paper_profiles.read(_file(tmp_path, text), KNOWN)


def test_a_paper_profile_needs_a_source_for_every_setting(tmp_path, monkeypatch):
    from dataclasses import dataclass

    from rerank_lib import paper_profiles
    from rerank_lib.settings import Settings

    @dataclass(frozen=True)
    class Demo(Settings):
        depth: int = 20
        sizes: tuple = (1,)

    monkeypatch.setattr(paper_profiles, "PAPER_PROFILES", tmp_path)
    _file(tmp_path, "pipeline: demo\nprofile: paper\nsettings:\n  depth: {value: 100, source: paper section 4}\n")
    assert paper_profiles.paper_profile("demo", Demo()).values == {"depth": 100}
    _file(tmp_path, "pipeline: demo\nprofile: paper\nsettings:\n  depth: {value: 100, source: paper section 4}\n"
                    "  sizes: [1, 2]\n")
    with pytest.raises(paper_profiles.SettingsFileError, match=r"demo.yaml, line 5: setting 'sizes' has no source"):
        paper_profiles.paper_profile("demo", Demo())
    _file(tmp_path, "pipeline: other\nprofile: paper\n")
    with pytest.raises(paper_profiles.SettingsFileError, match="expected pipeline: demo and profile: paper"):
        paper_profiles.paper_profile("demo", Demo())


def test_the_paper_profiles_are_package_data():
    """Installed from the repository (not editable), the package still finds its paper profiles."""
    import tomllib

    from rerank_lib.paper_profiles import PAPER_PROFILES
    from rerank_lib.paths import PROJECT_ROOT

    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert package_data["rerank_lib.recipes"] == ["paper_profiles/*.yaml"]
    assert PAPER_PROFILES == PROJECT_ROOT / "rerank_lib" / "recipes" / "paper_profiles"
    assert sorted(p.stem for p in PAPER_PROFILES.glob("*.yaml")) == sorted(
        ["cross_encoder", "distillation", "first_stage", "hopweaver", "inranker", "llm_reranker", "rankllm",
         "released_checkpoints", "retriever", "retriever_scifact", "teacher"])


RECIPE_FILE = GOOD + """\
profiles:
  smoke:
    depth: 5
    stage1.train: {learning_rate: 1.0e-3}
  # a comment
  paper-tiny:
    sizes: [3]
    mapping: {b: 2.5e-5}
references:
  - row: [scifact, bm25]
    measures:
      nDCG@10: {value: 0.665, source: BEIR Table 2}
  - row: model-x
    measures:
      nDCG@10: {value: 0.7, source: card line 3}
      RR@10: {value: 0.8, source: card line 4}
"""


def test_a_recipe_file_holds_every_profile_and_the_published_numbers(tmp_path):
    from rerank_lib import paper_profiles

    doc = paper_profiles.read(_file(tmp_path, RECIPE_FILE), KNOWN, paper_profiles.RECIPE_TOP_LEVEL)
    assert doc.profiles == {"smoke": {"depth": 5, "stage1.train.learning_rate": 1e-3},
                            "paper-tiny": {"sizes": [3], "mapping": {"b": 2.5e-5}}}
    assert doc.all_profiles() == {"smoke": {"depth": 5, "stage1.train.learning_rate": 1e-3}, "default": {},
                                  "paper": doc.values, "paper-tiny": {"sizes": [3], "mapping": {"b": 2.5e-5}}}
    assert doc.references == {("scifact", "bm25"): {"nDCG@10": {"value": 0.665, "source": "BEIR Table 2"}},
                              "model-x": {"nDCG@10": {"value": 0.7, "source": "card line 3"},
                                          "RR@10": {"value": 0.8, "source": "card line 4"}}}
    # a plain settings file (read without RECIPE_TOP_LEVEL) holds no other profiles and no published numbers
    with pytest.raises(paper_profiles.SettingsFileError, match=r"demo.yaml, line 20: unknown top-level key 'profiles'"):
        paper_profiles.read(_file(tmp_path, RECIPE_FILE), KNOWN)


@pytest.mark.parametrize("old,new,message", [
    ("  smoke:\n    depth: 5", "  smoke:\n    deep: 5", r"unknown setting 'deep' in \S+demo.yaml, line 22"),
    ("  paper-tiny:", "  paper:", r"demo.yaml, line 25: unknown profile 'paper'; profiles holds smoke, default, paper-tiny"),
    ("  smoke:\n    depth: 5", "  smoke:\n    depth: 5\n    depth: 6", r"demo.yaml, line 23: .*'depth' is given twice"),
    ("{value: 0.665, source: BEIR Table 2}", "{value: high, source: BEIR Table 2}",
     r"demo.yaml, line 31: reference \('scifact', 'bm25'\) nDCG@10: write \{value: number, source: text\}"),
    ("  - row: model-x\n    measures:", "  - row: model-x\n    measure:", r"demo.yaml, line 32: a reference holds row, measures"),
    ("  - row: model-x", "  - row: [scifact, bm25]", r"demo.yaml, line 32: reference row \('scifact', 'bm25'\) is given twice"),
])
def test_a_bad_recipe_file_names_the_file_line_and_key(tmp_path, old, new, message):
    from rerank_lib import paper_profiles

    assert old in RECIPE_FILE
    with pytest.raises(paper_profiles.SettingsFileError, match=message):
        paper_profiles.read(_file(tmp_path, RECIPE_FILE.replace(old, new)), KNOWN, paper_profiles.RECIPE_TOP_LEVEL)


def test_a_recipe_file_holds_the_variants_a_search_tries(tmp_path):
    from rerank_lib import paper_profiles

    text = RECIPE_FILE + "grids:\n  smoke:\n    - {depth: 3, stage1.train.seed: 1}\n    - {depth: 4}\n  paper: []\n"
    doc = paper_profiles.read(_file(tmp_path, text), KNOWN, paper_profiles.RECIPE_TOP_LEVEL)
    assert doc.grids == {"smoke": [{"depth": 3, "stage1.train.seed": 1}, {"depth": 4}], "paper": []}
    assert list(doc.grids["smoke"][0]) == ["depth", "stage1.train.seed"]  # the order a variant's label follows
    with pytest.raises(paper_profiles.SettingsFileError, match=r"unknown setting 'deep' in \S+demo.yaml, line 39"):
        paper_profiles.read(_file(tmp_path, text.replace("{depth: 4}", "{deep: 4}")), KNOWN,
                            paper_profiles.RECIPE_TOP_LEVEL)
    with pytest.raises(paper_profiles.SettingsFileError, match=r"demo.yaml, line 40: unknown profile 'big'"):
        paper_profiles.read(_file(tmp_path, text.replace("  paper: []", "  big: []")), KNOWN,
                            paper_profiles.RECIPE_TOP_LEVEL)
