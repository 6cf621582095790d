"""Settings files: a recipe's profiles, and the train command's `--config`, read by one YAML reader.

A file holds `pipeline:`, `profile:`, `settings:` and, for a paper profile, `gaps:`. Under `settings:` a key is a
dotted setting (`stage1.train.learning_rate`) or a mapping that nests it (`stage1.train:` then `learning_rate:`); a
value is plain (`7.0e-5`) or `{value: ..., source: ...}`. YAML anchors write identical sections once. A recipe's
file (`rerank_lib/recipes/paper_profiles/<pipeline>.yaml`, package data) also holds its other profiles (`profiles:`
`default` (under every other profile: Recipe.config), `smoke`, `paper-tiny`; no source needed), the published
numbers its records show (`references:`, `{row: key or [dataset, method], measures: {name: {value, source}}}`), the
variants a search tries per profile (`grids:`), the papers' claims that rows of the records test (`claims:`, read
by `results.ledger`) and the papers' released checkpoints to run in our harness (`checkpoints:`, read by
`recipes.released_checkpoints`). Every error names the file, the line and the key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

import yaml

from .settings import PAPER_TINY, PROFILES, paths

PAPER_PROFILES = Path(__file__).with_name("recipes") / "paper_profiles"
TOP_LEVEL = ("pipeline", "profile", "settings", "gaps")
#: a recipe's packaged file adds its other profiles and its published numbers to what a `--config` file holds
RECIPE_TOP_LEVEL = (*TOP_LEVEL, "profiles", "references", "grids", "claims", "checkpoints")
OTHER_PROFILES = tuple(p for p in PROFILES if p != "paper")
GAP_KEYS = ("setting", "published", "why")
REFERENCE_KEYS = ("row", "measures")
#: a claim: what the paper says, where, the two rows of the records that test it (a vs b) and where those rows run
CLAIM_KEYS = ("id", "claim", "source", "measure", "dataset", "split", "a", "b", "direction", "runs_on")
CLAIM_OPTIONAL = ("margin", "published_effect", "evidence", "needs", "produced_by", "credits_training")
#: where a claim's rows run: "cpu", the default profile writes them (offline; `produced_by` is the command, and a
#: missing row is "not run"); "paper", only the paper profile's models write them (a GPU, the hub: `needs` is the
#: command and its cost, and a missing row is "needs a GPU / the hub")
RUNS_ON = ("cpu", "paper")
#: "a >= b - margin" is a claim that a approaches / keeps most of b: a may fall short of b by at most `margin`;
#: "a < b" is a cost claim (latency, training time: lower is better)
DIRECTIONS = ("a > b", "a >= b - margin", "a < b")
ROW_KEYS = ("pipeline", "method")
#: what a claim needs at paper scale; the GPU hours and memory are computed from these (results.gpu_estimate)
NEEDS_KEYS = ("model", "command", "params_billion", "train_tokens", "eval_tokens", "tokens_source")
#: a released checkpoint: the hub model, the ranker it runs through and the row of its family it becomes, the test set
#: and first stage it was published on, the published number and how far ours may be from it (and why); the GPU
#: estimate is computed from params_billion and eval_tokens (results.gpu_estimate)
CHECKPOINT_KEYS = ("model", "pipeline", "ranker", "dataset", "split", "first_stage", "depth", "measure", "published",
                   "tolerance", "params_billion", "eval_tokens", "tokens_source")
CHECKPOINT_OPTIONAL = ("options",)
#: the rankers a released checkpoint runs through, and the options each takes (listwise: the sliding window)
LISTWISE_OPTIONS = ("window", "stride", "max_words", "context_size", "identifiers")
CHECKPOINT_RANKERS = {"cross-encoder": ("max_length",), "monot5": ("max_length",),
                      "listwise-generate": LISTWISE_OPTIONS, "listwise-first": LISTWISE_OPTIONS}
IDENTIFIERS = ("auto", "numeric", "alpha")
# YAML 1.1 reads 1e-5 (no dot) as text: a setting is never meant as such a string
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class SettingsFileError(ValueError):
    """A settings file that cannot be used, with the file, line and key."""


@dataclass(frozen=True)
class SettingsFile:
    """A file's settings by dotted path, each one's source (where given) and line, and the published gaps."""

    path: Path
    pipeline: str | None = None
    profile: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    gaps: list[dict[str, str]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # the other profiles' values, by name
    references: dict[Any, dict[str, dict]] = field(default_factory=dict)  # row key -> {measure: {value, source}}
    grids: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # profile -> the variants a search tries
    claims: list[dict[str, Any]] = field(default_factory=list)  # the papers' claims the records test (`claims:`)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # released checkpoints to run (`checkpoints:`)

    def all_profiles(self) -> dict[str, dict[str, Any]]:
        """Every profile's values (`PROFILES` of a recipe): smoke, default, paper (this file's settings), paper-tiny."""
        return {name: self.values if name == "paper" else self.profiles.get(name, {})
                for name in ("smoke", "default", "paper", PAPER_TINY)}


def _error(path, node: yaml.Node, message: str) -> SettingsFileError:
    return SettingsFileError(f"{path}, line {node.start_mark.line + 1}: {message}")


def _mapping(path, node, what: str) -> list[tuple[str, yaml.Node, int]]:
    """The (key, value node, key's line) of a mapping node; a duplicate key is an error (YAML would keep the last)."""
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, f"{what} must be a mapping")
    pairs, seen = [], set()
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise _error(path, key, f"{what}: a key must be a name")
        if key.value in seen:
            raise _error(path, key, f"{what}: {key.value!r} is given twice")
        seen.add(key.value)
        pairs.append((key.value, value, key.start_mark.line + 1))
    return pairs


def _value(loader: yaml.SafeLoader, node: yaml.Node):
    value = loader.construct_document(node)
    return float(value) if isinstance(value, str) and _EXPONENT.match(value) else value


def _is_sourced(node: yaml.Node) -> bool:
    """`{value: ..., source: ...}` (or `{value: ...}`): one setting, not a section of settings."""
    keys = {key.value for key, _ in node.value} if isinstance(node, yaml.MappingNode) else set()
    return "value" in keys and keys <= {"value", "source"}


def _settings(out: SettingsFile, loader, node, known: Collection[str], prefix: str = "") -> None:
    """Every setting under `node` into `out` by its dotted path."""
    for key, value, key_line in _mapping(out.path, node, f"settings {prefix.rstrip('.')}".strip()):
        name = prefix + key
        if name in out.values:
            raise _error(out.path, value, f"setting {name!r} is given twice")
        if name not in known and (_is_sourced(value) or not isinstance(value, yaml.MappingNode)
                                  or not any(k.startswith(name + ".") for k in known)):
            raise SettingsFileError(f"unknown setting {name!r} in {out.path}, line {key_line}")
        if _is_sourced(value):
            entries = {k: v for k, v, _ in _mapping(out.path, value, name)}
            out.values[name] = _value(loader, entries["value"])
            if "source" in entries:
                source = loader.construct_document(entries["source"])
                if not isinstance(source, str) or not source.strip():
                    raise _error(out.path, entries["source"], f"setting {name!r}: its source must be text")
                out.sources[name] = source
        elif name not in known:  # a section: its settings one level down
            _settings(out, loader, value, known, name + ".")
            continue
        else:
            out.values[name] = _value(loader, value)
        out.lines[name] = key_line


def _gaps(path, loader, node) -> list[dict[str, str]]:
    if not isinstance(node, yaml.SequenceNode):
        raise _error(path, node, "gaps must be a list of {setting, published, why}")
    gaps = []
    for item in node.value:
        gap = {key: loader.construct_document(value) for key, value, _ in _mapping(path, item, "a gap")}
        if tuple(gap) != GAP_KEYS or not all(isinstance(v, str) and v.strip() for v in gap.values()):
            raise _error(path, item, f"a gap holds {', '.join(GAP_KEYS)} (text, in that order), not {list(gap)}")
        gaps.append(gap)
    return gaps


def _profiles(out: SettingsFile, loader, node, known: Collection[str]) -> None:
    """`profiles:`: each other profile's settings (a source is allowed, not needed), checked like `settings:`."""
    for name, settings, line in _mapping(out.path, node, "profiles"):
        if name not in OTHER_PROFILES:
            raise SettingsFileError(f"{out.path}, line {line}: unknown profile {name!r}; profiles holds "
                                    f"{', '.join(OTHER_PROFILES)} (the paper profile is `settings:`)")
        profile = SettingsFile(out.path)
        if not (isinstance(settings, yaml.ScalarNode) and settings.value == ""):
            _settings(profile, loader, settings, known)
        out.profiles[name] = profile.values


def _grids(out: SettingsFile, loader, node, known: Collection[str]) -> None:
    """`grids:`: per profile, a list of variants, each a settings mapping checked like `settings:`."""
    for name, variants, line in _mapping(out.path, node, "grids"):
        if name not in PROFILES:
            raise SettingsFileError(f"{out.path}, line {line}: unknown profile {name!r}; grids holds "
                                    f"{', '.join(PROFILES)}")
        if not isinstance(variants, yaml.SequenceNode):
            raise _error(out.path, variants, f"grids {name}: a list of settings mappings")
        out.grids[name] = []
        for variant in variants.value:
            settings = SettingsFile(out.path)
            _settings(settings, loader, variant, known)
            out.grids[name].append(settings.values)


def _references(path, loader, node) -> dict[Any, dict[str, dict]]:
    """`references:`: published numbers by row key (a name, or [dataset, method] read as a tuple)."""
    if not isinstance(node, yaml.SequenceNode):
        raise _error(path, node, "references must be a list of {row, measures}")
    table = {}
    for item in node.value:
        entry = {key: value for key, value, _ in _mapping(path, item, "a reference")}
        if tuple(entry) != REFERENCE_KEYS:
            raise _error(path, item, f"a reference holds {', '.join(REFERENCE_KEYS)} (in that order), "
                                     f"not {list(entry)}")
        row = loader.construct_document(entry["row"])
        row = tuple(row) if isinstance(row, list) else row
        if row in table:
            raise _error(path, entry["row"], f"reference row {row!r} is given twice")
        measures = {}
        for measure, published, _ in _mapping(path, entry["measures"], f"reference {row!r}: measures"):
            ref = {key: loader.construct_document(value) for key, value, _ in _mapping(path, published, measure)}
            if (tuple(ref) != ("value", "source") or not isinstance(ref["value"], (int, float))
                    or not isinstance(ref["source"], str) or not ref["source"].strip()):
                raise _error(path, published, f"reference {row!r} {measure}: write {{value: number, source: text}}")
            measures[measure] = ref
        table[row] = measures
    return table


def _text(path, node, what: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(path, node, f"{what} must be text, not {value!r}")
    return value


def _number(path, node, what: str, value, minimum: float = 0.0) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise _error(path, node, f"{what} must be a number >= {minimum:g}, not {value!r}")
    return float(value)


def _fields(path, loader, node, what: str, required, optional=()) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """A mapping's values and nodes by key: each of `required` present, nothing outside required + optional."""
    nodes = {key: value for key, value, _ in _mapping(path, node, what)}
    for key in nodes:
        if key not in (*required, *optional):
            raise _error(path, nodes[key], f"{what}: unknown field {key!r} (fields: {', '.join((*required, *optional))})")
    missing = [key for key in required if key not in nodes]
    if missing:
        raise _error(path, node, f"{what}: field {missing[0]!r} is missing")
    return {key: loader.construct_document(value) for key, value in nodes.items()}, nodes


def _claim(path, loader, item) -> dict[str, Any]:
    """One claim, every field checked; a row is {pipeline, method} as records name them."""
    ident = {key: value for key, value, _ in _mapping(path, item, "a claim")}.get("id")
    what = f"claim {ident.value!r}" if isinstance(ident, yaml.ScalarNode) and ident.value else "a claim"
    claim, nodes = _fields(path, loader, item, what, CLAIM_KEYS, CLAIM_OPTIONAL)
    for key in ("id", "claim", "source", "measure", "dataset", "split", "direction", "evidence", "runs_on",
                "produced_by"):
        if key in claim:
            _text(path, nodes[key], f"{what}: {key}", claim[key])
    _where_rows_run(path, claim, nodes, what)
    if claim["direction"] not in DIRECTIONS:
        raise _error(path, nodes["direction"], f"{what}: direction must be one of {', '.join(map(repr, DIRECTIONS))}, "
                                               f"not {claim['direction']!r}")
    if (claim["direction"] == "a >= b - margin") != ("margin" in claim):
        raise _error(path, nodes.get("margin", nodes["direction"]),
                     f"{what}: margin is given exactly when direction is 'a >= b - margin'")
    if "margin" in claim:
        claim["margin"] = _number(path, nodes["margin"], f"{what}: margin", claim["margin"])
    for side in ("a", "b"):
        row, row_nodes = _fields(path, loader, nodes[side], f"{what}: row {side}", ROW_KEYS)
        for key in ROW_KEYS:
            _text(path, row_nodes[key], f"{what}: row {side}: {key}", row[key])
        claim[side] = row
    if "published_effect" in claim:
        effect, effect_nodes = _fields(path, loader, nodes["published_effect"], f"{what}: published_effect",
                                       ("value", "source"))
        _number(path, effect_nodes["value"], f"{what}: published_effect: value", effect["value"], float("-inf"))
        _text(path, effect_nodes["source"], f"{what}: published_effect: source", effect["source"])
    if "needs" in claim:
        needs, needs_nodes = _fields(path, loader, nodes["needs"], f"{what}: needs", NEEDS_KEYS)
        for key in ("model", "command", "tokens_source"):
            _text(path, needs_nodes[key], f"{what}: needs: {key}", needs[key])
        for key in ("params_billion", "train_tokens", "eval_tokens"):
            needs[key] = _number(path, needs_nodes[key], f"{what}: needs: {key}", needs[key])
    claim["line"] = item.start_mark.line + 1
    return claim


def _where_rows_run(path, claim: dict, nodes: dict, what: str) -> None:
    """`runs_on` and what it asks for: a CPU claim says the command that writes its rows (`produced_by`), a paper
    claim what the paper scale takes (`needs`); `credits_training` (default true) is a yes / no."""
    if claim["runs_on"] not in RUNS_ON:
        raise _error(path, nodes["runs_on"], f"{what}: runs_on must be one of {', '.join(map(repr, RUNS_ON))}, "
                                             f"not {claim['runs_on']!r}")
    if claim["runs_on"] == "cpu" and "produced_by" not in claim:
        raise _error(path, nodes["runs_on"], f"{what}: runs_on 'cpu' needs produced_by (the command that writes "
                                             "its rows)")
    if claim["runs_on"] == "paper" and ("needs" not in claim or "produced_by" in claim):
        raise _error(path, nodes["runs_on"], f"{what}: runs_on 'paper' needs `needs` (its command and cost) and no "
                                             "produced_by")
    if not isinstance(claim.get("credits_training", True), bool):
        raise _error(path, nodes["credits_training"], f"{what}: credits_training must be true or false")


def _claims(path, loader, node) -> list[dict[str, Any]]:
    """`claims:`: a list of claims, each id once."""
    if not isinstance(node, yaml.SequenceNode):
        raise _error(path, node, f"claims must be a list of {{{', '.join(CLAIM_KEYS)}, ...}}")
    claims = []
    for item in node.value:
        claim = _claim(path, loader, item)
        if any(c["id"] == claim["id"] for c in claims):
            raise _error(path, item, f"claim id {claim['id']!r} is given twice")
        claims.append(claim)
    return claims


def _options(path, loader, node, what: str, ranker: str) -> dict[str, Any]:
    """A checkpoint's ranker options: only those its ranker takes, sizes as integers >= 1, identifiers by name."""
    options, nodes = _fields(path, loader, node, f"{what}: options", (), CHECKPOINT_RANKERS[ranker])
    for key, value in options.items():
        if key == "identifiers":
            if value not in IDENTIFIERS:
                raise _error(path, nodes[key], f"{what}: options: identifiers must be one of {', '.join(IDENTIFIERS)}, "
                                               f"not {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _error(path, nodes[key], f"{what}: options: {key} must be an integer >= 1, not {value!r}")
    return options


def _checkpoint(path, loader, item) -> dict[str, Any]:
    """One released checkpoint, every field checked: its row's pipeline is a recipe file's, its test set a split of a
    dataset the data registry knows, its published number a number or null (not found: the source says where it was
    looked for), its tolerance a number >= 0 with the reason for it."""
    from .data.registry import DATASETS

    model = {key: value for key, value, _ in _mapping(path, item, "a checkpoint")}.get("model")
    what = f"checkpoint {model.value!r}" if isinstance(model, yaml.ScalarNode) and model.value else "a checkpoint"
    entry, nodes = _fields(path, loader, item, what, CHECKPOINT_KEYS, CHECKPOINT_OPTIONAL)
    for key in ("model", "pipeline", "ranker", "dataset", "split", "first_stage", "measure", "tokens_source"):
        _text(path, nodes[key], f"{what}: {key}", entry[key])
    pipelines = sorted(p.stem for p in PAPER_PROFILES.glob("*.yaml"))
    if entry["pipeline"] not in pipelines:
        raise _error(path, nodes["pipeline"], f"{what}: pipeline must be one of {', '.join(pipelines)} (the family "
                                              f"whose rows it sits among), not {entry['pipeline']!r}")
    if entry["ranker"] not in CHECKPOINT_RANKERS:
        raise _error(path, nodes["ranker"], f"{what}: ranker must be one of {', '.join(CHECKPOINT_RANKERS)}, not "
                                            f"{entry['ranker']!r}")
    spec = DATASETS.get(entry["dataset"])
    if spec is None or entry["split"] not in spec.splits:
        known = ", ".join(f"{name} ({'/'.join(s.splits)})" for name, s in DATASETS.items())
        raise _error(path, nodes["dataset" if spec is None else "split"],
                     f"{what}: {entry['dataset']} {entry['split']} is not a known test set; known: {known}")
    depth = entry["depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise _error(path, nodes["depth"], f"{what}: depth must be an integer >= 1, not {depth!r}")
    published, published_nodes = _fields(path, loader, nodes["published"], f"{what}: published", ("value", "source"))
    if published["value"] is not None:
        published["value"] = _number(path, published_nodes["value"], f"{what}: published: value", published["value"])
    _text(path, published_nodes["source"], f"{what}: published: source", published["source"])
    tolerance, tolerance_nodes = _fields(path, loader, nodes["tolerance"], f"{what}: tolerance", ("value", "why"))
    tolerance["value"] = _number(path, tolerance_nodes["value"], f"{what}: tolerance: value", tolerance["value"])
    _text(path, tolerance_nodes["why"], f"{what}: tolerance: why", tolerance["why"])
    entry.update(published=published, tolerance=tolerance)
    entry["params_billion"] = _number(path, nodes["params_billion"], f"{what}: params_billion", entry["params_billion"])
    entry["eval_tokens"] = _number(path, nodes["eval_tokens"], f"{what}: eval_tokens", entry["eval_tokens"])
    entry["options"] = _options(path, loader, nodes["options"], what, entry["ranker"]) if "options" in nodes else {}
    entry["line"] = item.start_mark.line + 1
    return entry


def _checkpoints(path, loader, node) -> list[dict[str, Any]]:
    """`checkpoints:`: a list of released checkpoints, each (model, dataset, split) once."""
    if not isinstance(node, yaml.SequenceNode):
        raise _error(path, node, f"checkpoints must be a list of {{{', '.join(CHECKPOINT_KEYS)}, ...}}")
    entries = []
    for item in node.value:
        entry = _checkpoint(path, loader, item)
        key = (entry["model"], entry["dataset"], entry["split"])
        if any((e["model"], e["dataset"], e["split"]) == key for e in entries):
            raise _error(path, item, f"checkpoint {entry['model']!r} on {entry['dataset']} {entry['split']} is given "
                                     "twice")
        entries.append(entry)
    return entries


def read_claims(path) -> tuple[str | None, list[dict[str, Any]]]:
    """A recipe file's pipeline and its checked `claims:` (nothing else of the file is read): what the ledger needs
    without the recipe's settings class."""
    path = Path(path)
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise SettingsFileError(f"{path}, line {mark.line + 1}: not YAML ({err.problem})") from None
    top = {key: node for key, node, _ in _mapping(path, root, "a settings file")} if root is not None else {}
    pipeline = loader.construct_document(top["pipeline"]) if "pipeline" in top else None
    return pipeline, (_claims(path, loader, top["claims"]) if "claims" in top else [])


def packaged_claims(folder: Path = PAPER_PROFILES) -> dict[str, list[dict[str, Any]]]:
    """Every recipe file's claims, by the file's pipeline (files without claims left out); an id used by two
    files is an error naming both."""
    out: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        pipeline, claims = read_claims(path)
        for claim in claims:
            if claim["id"] in seen:
                raise SettingsFileError(f"{path}, line {claim['line']}: claim id {claim['id']!r} is also in "
                                        f"{seen[claim['id']]}")
            seen[claim["id"]] = path
        if claims:
            out[pipeline or path.stem] = claims
    return out


def read(path, known: Collection[str], top_level: Collection[str] = TOP_LEVEL) -> SettingsFile:
    """A settings file, its settings checked against `known` (the config's dotted paths, `settings.paths`);
    `top_level` names the sections it may hold (a recipe's own file: `RECIPE_TOP_LEVEL`)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise SettingsFileError(f"{path}, line {mark.line + 1}: not YAML ({err.problem})") from None
    if root is None:
        return SettingsFile(path)
    top = {}
    for key, node, line in _mapping(path, root, "a settings file"):
        if key not in top_level:
            raise SettingsFileError(f"{path}, line {line}: unknown top-level key {key!r}; a settings file holds "
                                    f"{', '.join(top_level)}")
        top[key] = node
    out = SettingsFile(path, *(loader.construct_document(top[k]) if k in top else None for k in ("pipeline", "profile")))
    if "settings" in top and not (isinstance(top["settings"], yaml.ScalarNode) and top["settings"].value == ""):
        _settings(out, loader, top["settings"], set(known))
    if "gaps" in top:
        out.gaps.extend(_gaps(path, loader, top["gaps"]))
    if "profiles" in top:
        _profiles(out, loader, top["profiles"], set(known))
    if "references" in top:
        out.references.update(_references(path, loader, top["references"]))
    if "grids" in top:
        _grids(out, loader, top["grids"], set(known))
    if "claims" in top:
        out.claims.extend(_claims(path, loader, top["claims"]))
    if "checkpoints" in top:
        out.checkpoints.extend(_checkpoints(path, loader, top["checkpoints"]))
    return out


def paper_profile(pipeline: str, base, path: Path | None = None) -> SettingsFile:
    """The profiles of `pipeline` for the config `base` (its defaults), from `path` (default: the packaged
    recipes/paper_profiles/<pipeline>.yaml): the paper profile, every setting with a source, and the file's other
    profiles and published numbers."""
    profile = read(path or PAPER_PROFILES / f"{pipeline}.yaml", paths(base), RECIPE_TOP_LEVEL)
    if (profile.pipeline, profile.profile) != (pipeline, "paper"):
        raise SettingsFileError(f"{profile.path}: expected pipeline: {pipeline} and profile: paper, "
                                f"not {profile.pipeline} / {profile.profile}")
    unsourced = [name for name in profile.values if name not in profile.sources]
    if unsourced:
        raise SettingsFileError(f"{profile.path}, line {profile.lines[unsourced[0]]}: setting {unsourced[0]!r} has "
                                "no source (write it as {value: ..., source: ...})")
    return profile
