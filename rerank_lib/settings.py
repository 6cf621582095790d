"""Recipe settings: nested dataclasses, profiles, dotted-path overrides, and a record of which settings were read.

A recipe config holds its training settings as `train: TrainConfig` (one per stage where a pipeline has stages);
a profile or a notebook parameter overrides any field by its dotted path, e.g. `{"stage2.train.learning_rate":
2e-5}`. Unknown paths are an error, so a typo never silently does nothing. Config classes derive from `Settings`,
which can record every field the code reads (`RERANK_SETTINGS_READS=<file>`): the test suite runs every notebook
that way and fails on a setting that is accepted but never read.
"""
from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import json
import numbers
import os
import sys
import types
import typing
from typing import Any, Iterator, Mapping, Sequence

from .paths import shown_in

PROFILES = ("smoke", "default", "paper", "paper-tiny")
#: paper-tiny: every paper setting, then the recipe's small overlay (`PROFILES["paper-tiny"]`: sizes, steps,
#: queries), with every hub id held as the name of its tiny stand-in of the same class (rerank_lib.models.standin):
#: the paper path's code runs on a CPU; its numbers mean nothing and its records say 'paper-tiny'.
PAPER_TINY = "paper-tiny"

# Reading every field to print, compare, copy or convert a config is not using a setting.
_NOT_A_USE = frozenset({"__repr__", "__eq__", "__hash__", "asdict", "_asdict_inner", "astuple", "_astuple_inner",
                        "replace", "_replace"})
_quiet = contextvars.ContextVar("settings_quiet", default=False)
_collector: contextvars.ContextVar[set | None] = contextvars.ContextVar("settings_collect", default=None)
_reads: set[tuple[str, str]] | None = set() if os.environ.get("RERANK_SETTINGS_READS") else None
_built: dict[str, dict] = {}


class SettingError(ValueError):
    """A setting refused as it is set: one line that starts with its dotted path (`train.learning_rate: ...`), the
    same from a notebook parameter, a profile, a YAML file or the shell."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")

    def under(self, head: str) -> "SettingError":
        """The same error for the setting as a field of the config `head` (train -> train.max_steps)."""
        return SettingError(f"{head}.{self.path}", self.problem)


def check_range(name: str, value, *, minimum=None, above=None, maximum=None, allow_none: bool = False) -> None:
    """Refuse a number out of its range, naming the setting: `minimum` <= value, `above` < value, value <=
    `maximum`; None only where `allow_none` (None means 'unset' there)."""
    if value is None:
        if allow_none:
            return
        raise SettingError(name, "must be set (got None)")
    if minimum is not None and value < minimum:
        raise SettingError(name, f"must be >= {minimum}{' (or None)' if allow_none else ''}, got {value!r}")
    if above is not None and value <= above:
        raise SettingError(name, f"must be > {above}{' (or None)' if allow_none else ''}, got {value!r}")
    if maximum is not None and value > maximum:
        raise SettingError(name, f"must be <= {maximum}, got {value!r}")


class Settings:
    """Base of every config dataclass: field reads are recorded when `$RERANK_SETTINGS_READS` names a file.

    Every field's value is checked against its annotation as the config is made (`check_types`), so a string
    learning rate or seed is refused with the setting's name instead of failing deep inside torch or numpy.

    A subclass may set `READ_ONLY_WHEN = {"field": "the condition"}` (a ClassVar) for a field that only some
    profiles read (a paper-only feature); the settings-read test then accepts it unread in the smoke run.
    """

    def _repr_pretty_(self, printer, cycle):
        """How a notebook shows a config: its repr, with this machine's paths shown from their root (data_root)."""
        printer.text(shown_in(repr(self)))

    def __getattribute__(self, name: str):
        collector = _collector.get()
        if (_reads is not None or collector is not None) and not name.startswith("_") and not _quiet.get():
            fields = type(self).__dict__.get("__dataclass_fields__") or getattr(type(self), "__dataclass_fields__", {})
            if name in fields and sys._getframe(1).f_code.co_name not in _NOT_A_USE:
                pair = (type(self).__qualname__, name)
                if _reads is not None:
                    _reads.add(pair)
                if collector is not None:
                    collector.add(pair)
        return object.__getattribute__(self, name)

    def __init_subclass__(cls, **kwargs):
        """A subclass's own `__post_init__` (validation) runs quietly: checking a value is not using it."""
        super().__init_subclass__(**kwargs)
        if "_repr_pretty_" not in cls.__dict__:  # IPython reads it before the __repr__ @dataclass writes into cls
            cls._repr_pretty_ = Settings._repr_pretty_
        own = cls.__dict__.get("__post_init__")
        if own is None:
            return

        def __post_init__(self):
            _register(self)
            token = _quiet.set(True)
            try:
                check_types(self)
                own(self)
            finally:
                _quiet.reset(token)

        cls.__post_init__ = __post_init__

    def __post_init__(self):
        _register(self)
        check_types(self)


_hints: dict[type, dict[str, Any]] = {}


def check_types(cfg) -> None:
    """Each field of `cfg` against its annotation: numbers are numbers (not bool, not text), texts are texts,
    tuples hold what they say; an integral float for an int field becomes the int (YAML and the shell read 1e3 as
    1000.0). A SettingError names the first field that does not fit."""
    cls = type(cfg)
    if cls not in _hints:
        try:
            _hints[cls] = typing.get_type_hints(cls)
        except Exception:  # an annotation this module cannot resolve: checked by the class itself, if at all
            _hints[cls] = {}
    for f in dataclasses.fields(cfg):
        hint = _hints[cls].get(f.name)
        if hint is None:
            continue
        value = object.__getattribute__(cfg, f.name)
        fits, fixed = _fits(value, hint)
        if not fits:
            raise SettingError(f.name, f"expected {_describe(hint)}, got {value!r}")
        if fixed is not value:
            object.__setattr__(cfg, f.name, fixed)


def _fits(value, hint) -> tuple[bool, Any]:
    """(whether `value` fits the annotation `hint`, the value to keep): unknown annotations fit anything."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True, value
    if origin in (typing.Union, types.UnionType):
        for member in sorted(args, key=lambda a: a is float):  # int before float: 3 stays an int
            ok, fixed = _fits(value, member)
            if ok:
                return True, fixed
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, numbers.Integral) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    if origin is typing.Literal:
        return value in args, value
    if origin is tuple:
        if not isinstance(value, tuple):
            return False, value
        members = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if not args or (len(members) != len(value)):
            return not args, value
        checked = [_fits(v, m) for v, m in zip(value, members)]
        if not all(ok for ok, _ in checked):
            return False, value
        fixed = tuple(v for _, v in checked)
        return True, fixed if any(a is not b for a, b in zip(fixed, value)) else value
    if origin in (list, dict, set, frozenset):
        return isinstance(value, origin), value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, hint), value
    return True, value


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    names = {int: "an integer", float: "a number", str: "a text", bool: "true or false", type(None): "None"}
    if hint in names:
        return names[hint]
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        return f"a list of {_describe(args[0])}" if len(args) == 2 and args[1] is Ellipsis else "a list"
    return getattr(hint, "__name__", str(hint))


@contextlib.contextmanager
def recording_reads() -> Iterator[set[tuple[str, str]]]:
    """The (class, field) settings read inside the block, whether or not `$RERANK_SETTINGS_READS` is set: the
    training loop keeps those of a run beside it, so that a later call that finds the run finished (and trains
    nothing) counts the same settings as read as the call that trained it."""
    reads: set[tuple[str, str]] = set()
    token = _collector.set(reads)
    try:
        yield reads
    finally:
        _collector.reset(token)


def replay_reads(pairs) -> None:
    """Count (class, field) pairs as read, as `recording_reads` recorded them when the run was made."""
    pairs = {tuple(pair) for pair in pairs}
    if _reads is not None:
        _reads.update(pairs)
    collector = _collector.get()
    if collector is not None:
        collector.update(pairs)


def _register(cfg) -> None:
    """The config's class and fields, for the settings-read record (only while one is kept)."""
    if _reads is None:
        return
    conditional = getattr(type(cfg), "READ_ONLY_WHEN", {})
    _built.setdefault(type(cfg).__qualname__, {"fields": [f.name for f in dataclasses.fields(cfg)],
                                               "read_only_when": dict(conditional)})


def snapshot(cfg) -> dict:
    """`dataclasses.asdict(cfg)` without counting as reading every setting: for record params and cache keys."""
    token = _quiet.set(True)
    try:
        return dataclasses.asdict(cfg)
    finally:
        _quiet.reset(token)


def settings_table(cfg, drop: Sequence[str] = ()):
    """Every setting by its dotted path (what `overrides` takes) as a one-column table, without `drop`."""
    import pandas as pd

    table = pd.json_normalize(snapshot(cfg)).T.rename(columns={0: "value"})
    table["value"] = [shown_in(v) if isinstance(v, str) else v for v in table["value"]]  # data_root: '<data>'
    return table.drop(index=list(drop)).rename_axis("parameter")


def paths(cfg, prefix: str = "") -> list[str]:
    """Every dotted field path of a (nested) config."""
    out = []
    for f in dataclasses.fields(cfg):
        value = object.__getattribute__(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += paths(value, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def override(cfg, values: Mapping[str, Any], skip_none: bool = True):
    """A copy of `cfg` with each dotted path set (`train.learning_rate`); with `skip_none`, None values are
    skipped (a notebook parameter left at None keeps the profile's value; a profile itself may set None).
    Lists become tuples where the field holds a tuple."""
    nested = {f.name for f in dataclasses.fields(cfg)
              if dataclasses.is_dataclass(object.__getattribute__(cfg, f.name))}
    flat = {}
    for key, value in values.items():  # a nested config's settings may come as a mapping: {"train": {...}}
        flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, Mapping) and key in nested
                    else {key: value})
    values = {k: v for k, v in flat.items() if v is not None or not skip_none}
    known = set(paths(cfg))
    unknown = sorted(k for k in values if k not in known)
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown} for {type(cfg).__name__}; known: {sorted(known)}")
    return _set(cfg, values)


def _tuples(value):
    """A YAML / shell list as the tuple a tuple field holds, nested lists too (`folds: [[a, b]]`)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _set(cfg, values: Mapping[str, Any]):
    direct, deeper = {}, {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            deeper.setdefault(head, {})[rest] = value
        else:
            current = object.__getattribute__(cfg, head)
            direct[head] = _tuples(value) if isinstance(current, tuple) and isinstance(value, list) else value
    for head, sub in deeper.items():
        try:
            direct[head] = _set(object.__getattribute__(cfg, head), sub)
        except SettingError as err:
            raise err.under(head) from None
    token = _quiet.set(True)
    try:
        return dataclasses.replace(cfg, **direct)
    finally:
        _quiet.reset(token)


def profile_values(profiles: Mapping[str, Mapping[str, Any]], profile: str) -> dict[str, Any]:
    """What a profile sets: its own table, or for paper-tiny the paper table with the paper-tiny overlay on top."""
    if profile == PAPER_TINY:
        return {**dict(profiles.get("paper", {})), **dict(profiles.get(PAPER_TINY, {}))}
    return dict(profiles.get(profile, {}))


def resolve_profile(base, profiles: Mapping[str, Mapping[str, Any]], profile: str, overrides: Mapping[str, Any]):
    """A config for `profile`: the base defaults, then the profile's values (`profile_values`), then the caller's
    overrides, each a mapping of dotted paths (or nested dicts for nested configs). paper-tiny holds each hub id
    as its stand-in's name (models.standin.as_standins): the config itself says what loads, no process state."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    cfg = override(base, {"profile": profile}) if "profile" in paths(base) else base
    cfg = override(cfg, profile_values(profiles, profile), skip_none=False)
    cfg = override(cfg, dict(overrides))
    if profile == PAPER_TINY:
        from .models.standin import as_standins

        cfg = override(cfg, {p: as_standins(value_at(cfg, p)) for p in paths(cfg)
                             if as_standins(value_at(cfg, p)) is not value_at(cfg, p)})
    return cfg


def _dump_reads() -> None:  # pragma: no cover - runs at interpreter exit
    target = os.environ.get("RERANK_SETTINGS_READS")
    if not target or _reads is None or not _built:
        return
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"built": _built, "read": sorted(map(list, _reads))}) + "\n")


if _reads is not None:
    atexit.register(_dump_reads)


def value_at(cfg, path: str):
    """The value of a dotted setting (`train.learning_rate`) of a nested config, without counting it as read."""
    value = cfg
    for name in path.split("."):
        value = object.__getattribute__(value, name)
    return value


def _shown(value):
    """A cell a table can print: containers as their JSON-like text, scalars as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = snapshot(value)
    if isinstance(value, Mapping):
        return json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in value.items()}, default=str)
    return str(list(value)) if isinstance(value, tuple) else value


def source_table(cfg, paper, sources: Mapping[str, str], gaps=()):
    """`setting | value | source` (Recipe.sources): in the paper profile every paper setting (an override names the
    paper value) and the `gaps` (published settings not applied); in another profile each setting that differs
    from `paper` (the resolved paper profile) beside the paper value; in paper-tiny also each model's stand-in."""
    import pandas as pd

    if value_at(cfg, "profile") == "paper":
        rows = []
        for path, source in sources.items():
            value, published = value_at(cfg, path), value_at(paper, path)
            if value != published:
                source = f"override (paper profile: {_shown(published)}); {source}"
            rows.append({"setting": path, "value": _shown(value), "source": source})
        rows += [{"setting": g["setting"], "value": f"not applied (published: {g['published']})",
                  "source": g["why"]} for g in gaps]
        return pd.DataFrame(rows, columns=["setting", "value", "source"]).set_index("setting")
    rows = []
    for path in paths(cfg):
        if path in ("profile", "data_root") or path.endswith("output_dir"):
            continue
        value, published = value_at(cfg, path), value_at(paper, path)
        if value != published:
            rows.append({"setting": path, "value": _shown(value), "paper value": _shown(published),
                         "source": sources.get(path, "not set by the paper profile (the dataclass default)")})
    if value_at(cfg, "profile") == PAPER_TINY:  # the models: each paper id and the stand-in that replaces it
        from .models.standin import replaced_ids

        for path in paths(cfg):
            for hub_id, what in replaced_ids(value_at(cfg, path)).items():
                rows.append({"setting": path, "value": what, "paper value": hub_id,
                             "source": "paper-tiny stand-in (rerank_lib.models.standin)"})
    return pd.DataFrame(rows, columns=["setting", "value", "paper value", "source"]).set_index("setting")
