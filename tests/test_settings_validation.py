"""Settings are checked where they are set, with one line naming the setting by its dotted path: the same check
for a config made in code, a notebook's overrides, a profile, a YAML file and the shell (they all go through
`settings.override` into the dataclasses). A step or epoch count of 0 or less used to train a whole epoch or
nothing and report success; a text learning rate or seed used to fail deep inside torch or numpy."""
from __future__ import annotations

import pytest

from rerank_lib import train as train_command
from rerank_lib.recipes import cross_encoder, inranker, retriever_training
from rerank_lib.settings import SettingError, override
from rerank_lib.training import TrainConfig


@pytest.mark.parametrize("field, value, message", [
    ("max_steps", 0, "max_steps: must be >= 1 (or None), got 0"),
    ("max_steps", -5, "max_steps: must be >= 1 (or None), got -5"),
    ("num_epochs", 0, "num_epochs: must be >= 1, got 0"),
    ("warmup_steps", -1, "warmup_steps: must be >= 0, got -1"),
    ("warmup_ratio", 1.5, "warmup_ratio: must be <= 1, got 1.5"),
    ("save_every_steps", 0, "save_every_steps: must be >= 1 (or None), got 0"),
    ("eval_every_steps", -2, "eval_every_steps: must be >= 1 (or None), got -2"),
    ("learning_rate", 0.0, "learning_rate: must be > 0, got 0.0"),
    ("learning_rate", "abc", "learning_rate: expected a number, got 'abc'"),
    ("learning_rate", "2e-5", "learning_rate: expected a number, got '2e-5'"),  # parsers turn text into numbers
    ("seed", "abc", "seed: expected an integer, got 'abc'"),
    ("seed", -1, "seed: must be >= 0, got -1"),
    ("seed", 1.5, "seed: expected an integer, got 1.5"),
    ("max_steps", True, "max_steps: expected an integer or None, got True"),
    ("gradient_checkpointing", "yes", "gradient_checkpointing: expected true or false, got 'yes'"),
    ("mixed_precision", "fp8", "mixed_precision: must be one of"),
])
def test_train_config_refuses_a_bad_value_naming_the_setting(field, value, message):
    with pytest.raises(SettingError) as refused:
        TrainConfig(**{field: value})
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_unset_and_whole_number_values_are_kept():
    cfg = TrainConfig(max_steps=None, save_every_steps=None, eval_every_steps=None, max_grad_norm=None,
                      learning_rate=1, warmup_ratio=0.1)
    assert cfg.max_steps is None and cfg.learning_rate == 1
    assert TrainConfig(max_steps=1000.0).max_steps == 1000  # 1e3 as YAML or the shell reads it
    assert type(TrainConfig(max_steps=1000.0).max_steps) is int


def test_dotted_overrides_name_the_nested_setting():
    """A notebook's parameters and the profiles reach TrainConfig through override(): the error names the full
    dotted path, one and two levels down."""
    with pytest.raises(SettingError, match=r"^train\.learning_rate: expected a number, got 'abc'$"):
        cross_encoder.config("smoke", **{"train.learning_rate": "abc"})
    with pytest.raises(SettingError, match=r"^train\.max_steps: must be >= 1 \(or None\), got 0$"):
        override(cross_encoder.config("smoke"), {"train": {"max_steps": 0}})
    with pytest.raises(SettingError, match=r"^stage2\.train\.num_epochs: must be >= 1, got 0$"):
        inranker.config("smoke", **{"stage2.train.num_epochs": 0})
    with pytest.raises(SettingError, match=r"^seed: expected an integer, got 'x'$"):
        cross_encoder.config("smoke", seed="x")


def resolve(argv):
    return train_command.resolve(train_command.build_parser().parse_args(argv))[1]


@pytest.mark.parametrize("argv, message", [
    (["--learning_rate", "abc"], "ctl_train.learning_rate: expected a number, got 'abc'"),
    (["--set", "ctl_train.max_steps=0"], "ctl_train.max_steps: must be >= 1 (or None), got 0"),
    (["--max_steps", "-3"], "_train.max_steps: must be >= 1 (or None), got -3"),
    (["--num_train_epochs", "0"], "_train.num_epochs: must be >= 1, got 0"),
    (["--set", "ctl_train.warmup_steps=-10"], "ctl_train.warmup_steps: must be >= 0, got -10"),
    (["--seed", "abc"], "seed: expected an integer, got 'abc'"),
])
def test_the_shell_refuses_the_same_values_with_the_same_line(argv, message):
    with pytest.raises(train_command.UsageError) as refused:
        resolve(["retriever", "--profile", "smoke", "--set", "methods=[ctl]", *argv])
    assert message in str(refused.value)


def test_a_yaml_file_is_checked_by_the_same_rule(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("pipeline: retriever\nprofile: smoke\nsettings:\n  ctl_train:\n    max_steps: 0\n")
    with pytest.raises(train_command.UsageError, match=rf"{path}: ctl_train.max_steps: must be >= 1"):
        resolve(["retriever", "--config", str(path)])
    path.write_text("pipeline: retriever\nprofile: smoke\nsettings:\n  ctl_train.learning_rate: fast\n")
    with pytest.raises(train_command.UsageError, match="ctl_train.learning_rate: expected a number, got 'fast'"):
        resolve(["retriever", "--config", str(path)])


def test_every_profile_of_every_recipe_passes_the_checks():
    """The checks refuse no value the project itself sets."""
    from rerank_lib.recipes import first_stage, hopweaver, llm_reranker, rankllm, teacher
    from rerank_lib.settings import PROFILES

    from rerank_lib.recipes import distillation

    makers = [m.config for m in (cross_encoder, distillation, first_stage, hopweaver, teacher, inranker, llm_reranker,
                                 rankllm, retriever_training)] + [retriever_training.scifact_config]
    for make in makers:
        for profile in PROFILES:
            assert make(profile) is not None


@pytest.mark.parametrize("overrides, message", [
    ({"losses": ["distill_listnet", "point_ce"]}, "losses: expected distinct variants among"),
    ({"losses": ["distill_listnet", "distill_listnet"]}, "losses: expected distinct variants among"),
    ({"losses": ["distill_listnet"]}, "reference 'distill_group_ce_kd' is not one of the losses"),
    ({"steps": 0}, "steps: the step budget must be >= 1"),
    ({"cross_encoder": {"train.max_steps": 10}}, "train.max_steps is this comparison's own setting: set steps"),
    ({"cross_encoder": {"model": "x"}}, "model is this comparison's own setting: set student"),
    ({"cross_encoder": {"train.learnig_rate": 1e-4}}, "unknown setting"),
    ({"cross_encoder": {"train": {"warmup_ratio": 2.0}}}, "warmup_ratio: must be <= 1"),
    ({"seeds": [13]}, "seeds: expected two or more distinct training seeds"),
])
def test_the_distillation_comparison_refuses_what_it_cannot_run(overrides, message):
    """Notebook 14's settings: distill_* losses, a reference among them, a budget of at least one step, and
    cross-encoder settings that are valid and not the comparison's own (each error names the setting)."""
    from rerank_lib.recipes import distillation

    with pytest.raises((TypeError, ValueError), match=message):
        distillation.config("default", **overrides)


def test_the_distillation_comparison_sets_the_cross_encoder_it_trains():
    from rerank_lib.recipes import distillation

    cfg = distillation.config("default", steps=7, seeds=[1, 2], cross_encoder={"train.learning_rate": 1e-4})
    ce = distillation.cross_encoder_config(cfg)
    assert (ce.model, ce.variants, ce.train.max_steps, ce.seeds, ce.variant_train) == (
        "minilm-l6", distillation.LOSSES, 7, (1, 2), {})
    assert ce.train.learning_rate == 1e-4 and ce.teacher == cross_encoder.config("default").teacher
    assert ce.train.eval_every_steps is None  # the profile's null unsets the cross-encoder's 25
    assert len(distillation.LOSSES) == 6 and distillation.config("paper").steps == 360
    assert distillation.cross_encoder_config(distillation.config("paper")).max_length == 512  # MiniLM's limit
