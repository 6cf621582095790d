"""RankZephyr's training data (Pradeep et al., 2023; castorini/rank_zephyr_training_data): one validating reader
that turns each ShareGPT record into a listwise training example (query, passages, target order).

The format, as rank_llm's trainer reads it (training/utils/data_utils.py, `GenerationDataset` / `RankingDataset`):
one JSON object per line (`.jsonl`, `.jsonl.gz`; or one JSON list, `.json`, as its `load_data` reads)
`{"id": ..., "conversations": [{"from": "system", "value": <system message>},
{"from": "human", "value": <RankZephyr user prompt>}, {"from": "gpt", "value": "[4] > [2] > ..."}]}`.
The trainer uses turns 0..2 by position; the user prompt is RankZephyr's template:
"I will provide you with {num} passages, each indicated by a numerical identifier []. Rank the passages based on
their relevance to the search query: {query}." + one "[{id}] {passage}" line per passage + "Search Query: {query}.
Rank the {num} passages above ...". Identifiers are 1..n (castorini's file) or A.. (`rryisthebest/
rank_zephyr_training_data_alpha`, the letter-identifier conversion both published training scripts load; the
reader accepts either, so the two files give the same examples). The answer must be a complete permutation of the
identifiers (rank_llm builds its ranking labels from it, assuming exactly that).

A recipe re-renders each example with its own prompt template (`listwise.training_data.conversation`), so
training and inference prompts are built by the same code.

Published location: the Hugging Face file below, a plain HTTPS download through `download.RemoteFile`. No
sha256 (nor md5) of it is published anywhere we could read (the dataset card and file page give none), so it is
NOT hash-pinned: the reader verifies every record strictly instead, and a mirror (or a user who has checked a
copy) pins it through `$RERANK_DOWNLOAD_MANIFEST`.
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .download import RemoteFile, download_files
from .errors import DataFormatError
from .jsonl import iter_jsonl
from .lines import read_json

#: castorini's numeric-identifier file (the `_alpha` dataset is its letter conversion; its file name is not
#: published in any source we could read). Unpinned: see the module docstring.
RANK_ZEPHYR_FILE = RemoteFile(
    "rank_llm/rank_zephyr_training_data.jsonl.gz",
    "https://huggingface.co/datasets/castorini/rank_zephyr_training_data/resolve/main/"
    "rank_zephyr_training_data.jsonl.gz",
    sha256=None,
)
MAX_PASSAGES = 20  # rank_llm's max_psg_num; letters run A..T

_PREFIX = re.compile(r"I will provide you with (\d+) passages?, each indicated by (?:a|an) (numerical|alphabetical) "
                     r"identifier \[\]\. Rank the passages based on their relevance to the search query: (.*)\.")
_SUFFIX = re.compile(r"Search Query: (.*)\.\nRank the (\d+) passages? above based on their relevance to the search "
                     r"query\.")
_ANSWER_ITEM = re.compile(r"\[([A-Z]|\d+)\]")


@dataclass(frozen=True)
class ListwiseExample:
    """One listwise training example: the passages in prompt order and the target order (0-based indices into
    `passages`, most relevant first), as the teacher (RankGPT-4 for RankZephyr's data) answered."""

    example_id: str
    query: str
    passages: tuple[str, ...]
    order: tuple[int, ...]
    alpha: bool  # the source's identifiers were letters

    @property
    def ranks(self) -> list[int]:
        """Target rank (0 = first) of each passage, in prompt order."""
        ranks = [0] * len(self.order)
        for position, passage in enumerate(self.order):
            ranks[passage] = position
        return ranks


def _identifier(i: int, alpha: bool) -> str:
    return chr(ord("A") + i) if alpha else str(i + 1)


def parse_user_prompt(text: str, path, lineno, field: str = "conversations[1].value") -> tuple[str, list[str], bool]:
    """(query, passages, alpha) of one RankZephyr user prompt; any departure from the template is a
    DataFormatError naming `field`."""
    lines = text.split("\n")
    head = _PREFIX.fullmatch(lines[0])
    if head is None:
        raise DataFormatError(path, lineno, field, f"the first line is not RankZephyr's prefix: {lines[0][:120]!r}")
    num, alpha, query = int(head.group(1)), head.group(2) == "alphabetical", head.group(3)
    if not 1 <= num <= MAX_PASSAGES:
        raise DataFormatError(path, lineno, field, f"{num} passages; RankZephyr's data has 1..{MAX_PASSAGES}")
    tail = text.rfind("\nSearch Query: ")
    suffix = _SUFFIX.match(text, tail + 1) if tail >= 0 else None
    if suffix is None:
        raise DataFormatError(path, lineno, field, "no 'Search Query: {query}.\\nRank the {num} passages above "
                                                   "based on their relevance to the search query.' suffix")
    if suffix.group(1) != query or int(suffix.group(2)) != num:
        raise DataFormatError(path, lineno, field, f"the prefix ({num} passages, query {query!r}) and the suffix "
                                                   f"({suffix.group(2)} passages, query {suffix.group(1)!r}) disagree")
    passages: list[str] = []
    for line in text[len(lines[0]):tail].split("\n"):
        expected = f"[{_identifier(len(passages), alpha)}] "
        if len(passages) < num and line.startswith(expected):
            passages.append(line[len(expected):])
        elif passages:  # a passage that spans lines
            passages[-1] += "\n" + line
        elif line.strip():
            raise DataFormatError(path, lineno, field, f"expected passage {expected.strip()} after the prefix, "
                                                       f"got {line[:60]!r}")
    passages = [p.rstrip("\n") for p in passages]
    if len(passages) != num:
        raise DataFormatError(path, lineno, field, f"the prefix announces {num} passages, found {len(passages)} "
                                                   f"(identifiers must run {_identifier(0, alpha)}.."
                                                   f"{_identifier(num - 1, alpha)} in order)")
    empty = [_identifier(i, alpha) for i, passage in enumerate(passages) if not passage.strip()]
    if empty:
        raise DataFormatError(path, lineno, field, f"passage(s) {', '.join(empty)} empty")
    return query, passages, alpha


def parse_answer(text: str, num: int, alpha: bool, path, lineno, field: str = "conversations[2].value") -> list[int]:
    """The 0-based target order of a '[B] > [A] > ...' answer; it must name every identifier exactly once."""
    items = [item.strip() for item in text.strip().split(">")]
    order = []
    for item in items:
        match = _ANSWER_ITEM.fullmatch(item)
        if match is None:
            raise DataFormatError(path, lineno, field, f"{item[:20]!r} is not an identifier like "
                                                       f"[{_identifier(0, alpha)}]")
        ident = match.group(1)
        index = ord(ident) - ord("A") if alpha and ident.isalpha() else (int(ident) - 1 if ident.isdigit() else -1)
        if ident.isdigit() == alpha or not 0 <= index < num:
            raise DataFormatError(path, lineno, field, f"[{ident}] is not one of the prompt's identifiers "
                                                       f"{_identifier(0, alpha)}..{_identifier(num - 1, alpha)}")
        if index in order:
            raise DataFormatError(path, lineno, field, f"[{ident}] appears twice")
        order.append(index)
    if len(order) != num:
        missing = [_identifier(i, alpha) for i in range(num) if i not in order]
        raise DataFormatError(path, lineno, field, f"the answer leaves out {', '.join(missing)}")
    return order


def parse_record(obj, path, lineno, where: str = "") -> ListwiseExample:
    """One ShareGPT record -> ListwiseExample; `where` prefixes field names (e.g. '[3].' for a JSON list)."""
    if not isinstance(obj, dict):
        raise DataFormatError(path, lineno, where.rstrip(".") or None, f"expected an object, got {type(obj).__name__}")
    turns = obj.get("conversations")
    if not isinstance(turns, list) or len(turns) < 3:
        raise DataFormatError(path, lineno, f"{where}conversations",
                              "missing, or fewer than 3 turns (system, human, gpt)")
    for i, role in enumerate(("system", "human", "gpt")):
        turn = turns[i]
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise DataFormatError(path, lineno, f"{where}conversations[{i}].value", "missing or not text")
        if "from" in turn and turn["from"] != role:
            raise DataFormatError(path, lineno, f"{where}conversations[{i}].from", f"expected {role!r}, got "
                                                                                  f"{turn['from']!r}")
    query, passages, alpha = parse_user_prompt(turns[1]["value"], path, lineno, f"{where}conversations[1].value")
    order = parse_answer(turns[2]["value"], len(passages), alpha, path, lineno, f"{where}conversations[2].value")
    example_id = str(obj.get("id", f"line-{lineno}"))
    return ListwiseExample(example_id, query, tuple(passages), tuple(order), alpha)


def iter_rank_zephyr(path: str | os.PathLike) -> Iterator[ListwiseExample]:
    """Every record of a RankZephyr training file (.jsonl, .jsonl.gz or a .json list), validated."""
    path = Path(path)
    if path.suffix == ".json":
        items = read_json(path)
        if not isinstance(items, list):
            raise DataFormatError(path, None, None, "expected a JSON list of records")
        for i, obj in enumerate(items):
            yield parse_record(obj, path, None, f"[{i}].")
        return
    for lineno, obj in iter_jsonl(path, allow_empty=False):
        yield parse_record(obj, path, lineno)


def read_rank_zephyr(path: str | os.PathLike, limit: int | None = None) -> list[ListwiseExample]:
    """The first `limit` (None: all) examples of a RankZephyr training file; a malformed record raises
    DataFormatError naming the file, the line and the field."""
    examples = list(itertools.islice(iter_rank_zephyr(path), limit))
    if not examples:
        raise DataFormatError(path, None, None, "no records")
    return examples


def rank_zephyr_file(dest_root: str | os.PathLike, spec: RemoteFile = RANK_ZEPHYR_FILE) -> Path:
    """The published training file under `dest_root` (the download cache), fetched once (through
    $RERANK_DOWNLOAD_MIRROR when set); unpinned unless $RERANK_DOWNLOAD_MANIFEST lists it."""
    return download_files([spec], dest_root)[0]
