"""Synthetic training queries: InPars's (below) and HopWeaver's bridge queries with their judged candidates (the
last section of this module).

InPars-style synthetic queries (Bonifacio et al., 2022; zetaalphavector/InPars), the target-domain data of
InRanker's stage 2: an LLM reads a document after a fixed 3-shot prompt and writes a query for it; each query gets
9 negatives sampled from the BM25 top-1000 of the same corpus, and the teacher labels all 10 pairs.

The prompt is InPars-v1's "vanilla" prompt (legacy/inpars-v1/prompts/vanilla_prompt.txt: three MS MARCO
document -> "Relevant Query" examples, then the target document), the one behind the InPars-v1 queries InRanker
distils on. As in InPars, the document is cut to `max_doc_tokens` tokens of the generator's tokenizer, decoding is
greedy and stops at the first newline, and the mean log-probability of the generated tokens is kept: InPars-v1's
filter (`inpars_filter`) drops queries of fewer than 3 tokens and keeps the top 10,000 of 100,000 by it. Offline the generator is SmolLM2-135M-Instruct (a raw completion, no chat template,
like the base LMs InPars used); online any causal LM id. The 3-shot prefix is identical for every document, so its
key/value cache is computed once and reused (the generated text is the same as without it).

Generations are cached on disk per (generator, prompt, settings, code version, document text), so a second run costs
nothing; the file carries its checksum, and a damaged one is generated again rather than read.
The documents come from the corpus only: no query or judgment of any split is read here.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np
import torch
from .progress import tqdm

from .atomic import atomic_cache_open, trusted_cache_file
from .code_version import code_version
from .data.hopweaver import GeneratedExample
from .data.trec import ranked
from .data.types import Document, Qrels, Run
from .models import load_causal_lm, load_model, load_tokenizer, pick_device
from .paths import cache_dir

#: InPars-v1 vanilla prompt, verbatim (Apache-2.0, zetaalphavector/InPars legacy/inpars-v1/prompts/vanilla_prompt.txt;
#: also under <data root>/prompts/inpars/). Its MS MARCO glitch ("inedible.assiflora") and trailing spaces are
#: the original's.
INPARS_VANILLA_PROMPT = (
    "Example 1:\nDocument: We don't know a lot about the effects of caffeine during pregnancy on you and your baby. "
    "So it's best to limit the amount you get each day. If you are pregnant, limit caffeine to 200 milligrams each "
    "day. This is about the amount in 1½ 8-ounce cups of coffee or one 12-ounce cup of coffee.     \nRelevant Query: "
    "Is a little caffeine ok during pregnancy?\n\nExample 2:\nDocument: Passiflora herbertiana. A rare passion fruit "
    "native to Australia. Fruits are green-skinned, white fleshed, with an unknown edible rating. Some sources list "
    "the fruit as edible, sweet and tasty, while others list the fruits as being bitter and inedible.assiflora "
    "herbertiana. A rare passion fruit native to Australia. Fruits are green-skinned, white fleshed, with an unknown "
    "edible rating. Some sources list the fruit as edible, sweet and tasty, while others list the fruits as being "
    "bitter and inedible.\nRelevant Query: What fruit is native to Australia?\n\nExample 3:\nDocument: The Canadian "
    "Armed Forces. 1  The first large-scale Canadian peacekeeping mission started in Egypt on November 24, 1956. 2  "
    "There are approximately 65,000 Regular Force and 25,000 reservist members in the Canadian military. 3  In "
    "Canada, August 9 is designated as National Peacekeepers' Day.\nRelevant Query: How large is the canadian "
    "military?\n\nExample 4:\nDocument: {document_text}\nRelevant Query:"
)


def build_prompt(document: str, template: str = INPARS_VANILLA_PROMPT) -> str:
    """The few-shot prompt for one (already truncated) document."""
    return template.format(document_text=document)


def parse_query(generated: str) -> str | None:
    """The query in a completion: its first line, stripped of a repeated 'Relevant Query:' label and of quotes.
    None when nothing usable is left (empty, or no letter at all)."""
    line = generated.split("\n", 1)[0].strip()
    if line.lower().startswith("relevant query:"):
        line = line[len("relevant query:"):].strip()
    line = line.strip().strip('"“”\'').strip()
    return line if any(c.isalpha() for c in line) else None


@dataclass(frozen=True)
class SyntheticQuery:
    doc_id: str
    query: str | None  # None: the generation could not be parsed (kept in the cache, dropped from training)
    raw: str
    mean_logprob: float
    doc_sha: str = ""
    n_tokens: int | None = None  # generated tokens of the query (the stop token not counted; None: not known)

    @property
    def qid(self) -> str:
        return f"syn-{self.doc_id}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def generator_settings(model: str, template: str = INPARS_VANILLA_PROMPT, max_doc_tokens: int = 256,
                       max_new_tokens: int = 32) -> dict:
    """What makes a generation (its cache key, with the code version)."""
    return {"model": str(model), "template_sha": _sha(template), "max_doc_tokens": max_doc_tokens,
            "max_new_tokens": max_new_tokens, "decoding": "greedy, stop at newline"}


def sample_documents(corpus: Mapping[str, Document], n: int, seed: int = 13, min_words: int = 20) -> list[str]:
    """n document ids drawn uniformly (seeded) among documents of at least `min_words` words."""
    ids = sorted(d for d, doc in corpus.items() if len(doc.text_for_model.split()) >= min_words)
    random.Random(seed).shuffle(ids)
    return ids[:n]


class QueryGenerator:
    """Greedy few-shot query generation with a causal LM (offline: 'smollm2-135m-instruct')."""

    def __init__(self, model: str = "smollm2-135m-instruct", max_doc_tokens: int = 256, max_new_tokens: int = 32,
                 device=None, template: str = INPARS_VANILLA_PROMPT):
        from transformers import AutoModelForCausalLM

        if " {document_text}" not in template:
            raise ValueError("the template needs ' {document_text}'")
        self.model_name, self.template = str(model), template
        self.max_doc_tokens, self.max_new_tokens = max_doc_tokens, max_new_tokens
        self.device = torch.device(device) if device is not None else pick_device()
        self.tokenizer = load_tokenizer(model)
        self.model = load_model(model, auto_class=AutoModelForCausalLM, device=self.device)
        self.model.eval()
        vocab = self.tokenizer.get_vocab()
        # Stop at the first token that holds a newline (InPars: eos = "\n"; byte-level BPE spells it 'Ċ').
        self.stop_ids = sorted({i for tok, i in vocab.items() if "\n" in tok or "Ċ" in tok}
                               | ({self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()))
        self.head, self.tail = template.split(" {document_text}")
        self.head_ids = self.tokenizer(self.head, add_special_tokens=True)["input_ids"]
        self._prefix_cache = None

    def settings(self) -> dict:
        return generator_settings(self.model_name, self.template, self.max_doc_tokens, self.max_new_tokens)

    def truncate(self, document: str) -> str:
        ids = self.tokenizer(document, add_special_tokens=False)["input_ids"][: self.max_doc_tokens]
        return self.tokenizer.decode(ids).strip()

    def prompt_ids(self, document: str) -> list[int]:
        """head ('...Example 4:\\nDocument:') + ' {document}\\nRelevant Query:', tokenised in two parts at a word
        boundary so the head's ids (and cache) are shared; equal to tokenising the whole prompt at once."""
        rest = f" {self.truncate(document)}{self.tail}"
        return self.head_ids + self.tokenizer(rest, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def _prefix(self):
        if self._prefix_cache is None:
            ids = torch.tensor([self.head_ids], device=self.device)
            self._prefix_cache = self.model(input_ids=ids, use_cache=True).past_key_values
        return copy.deepcopy(self._prefix_cache)

    @torch.inference_mode()
    def generate_one(self, document: str) -> tuple[str, float, int]:
        """(completion text, mean log-probability of its tokens, their number) for one document (the stop token
        is no part of either)."""
        ids = torch.tensor([self.prompt_ids(document)], device=self.device)
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=self._prefix(),
            max_new_tokens=self.max_new_tokens, do_sample=False, eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0],
            output_scores=True, return_dict_in_generate=True)
        new = out.sequences[0, ids.shape[1]:]
        logps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, new.tolist())]
        if new.numel() and new[-1].item() in self.stop_ids:  # the stop token is no part of the query
            logps = logps[:-1]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return text, float(np.mean(logps)) if logps else float("-inf"), len(logps)


def generate_queries(corpus: Mapping[str, Document], doc_ids: Sequence[str], generator: QueryGenerator | None = None,
                     model: str = "smollm2-135m-instruct", max_doc_tokens: int = 256, max_new_tokens: int = 32,
                     cache: bool = True, save_every: int = 8) -> list[SyntheticQuery]:
    """One synthetic query per document id, from the disk cache where possible (written atomically every
    `save_every` generations, so an interrupted run resumes). The generator is loaded only when something is
    missing from the cache."""
    settings = generator.settings() if generator else generator_settings(model, INPARS_VANILLA_PROMPT, max_doc_tokens,
                                                                          max_new_tokens)
    key = {**settings, "code": code_version(__name__)}
    path = cache_dir("synthetic_queries") / f"{_sha(json.dumps(key, sort_keys=True))}.jsonl" if cache else None
    known: dict[tuple[str, str], SyntheticQuery] = {}
    if path is not None and trusted_cache_file(path):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        known = {(row["doc_id"], row["doc_sha"]): SyntheticQuery(**row) for row in rows}
    keys = [(d, _sha(corpus[d].text_for_model)) for d in doc_ids]
    todo = [key for key in keys if key not in known]
    if todo:
        generator = generator or QueryGenerator(model, max_doc_tokens, max_new_tokens)
        for n, (d, sha) in enumerate(tqdm(todo, desc="synthetic queries", unit="query"), start=1):
            raw, logp, n_tokens = generator.generate_one(corpus[d].text_for_model)
            known[(d, sha)] = SyntheticQuery(d, parse_query(raw), raw, logp, sha, n_tokens)
            if path is not None and (n % save_every == 0 or n == len(todo)):
                with atomic_cache_open(path, "w") as handle:
                    handle.writelines(json.dumps(asdict(row), ensure_ascii=False) + "\n" for row in known.values())
    return [known[key] for key in keys]


def query_table(corpus: Mapping[str, Document], n: int, seed: int = 13, model: str = "smollm2-135m-instruct",
                max_doc_tokens: int = 256, max_new_tokens: int = 32, keep_fraction: float = 1.0,
                min_tokens: int = 0):
    """InPars-v1 queries for `n` sampled documents, one row each (doc_id, query, mean_logprob, n_tokens, raw, title,
    kept); `kept`: what `inpars_filter(keep_fraction, min_tokens)` keeps. model 'title' (smoke, no LLM): the
    document's title stands in for its query (its token count unknown, its log-probability 0)."""
    import pandas as pd

    doc_ids = sample_documents(corpus, n, seed=seed)
    if model == "title":
        rows = [{"doc_id": d, "query": corpus[d].title or corpus[d].text[:80], "mean_logprob": 0.0, "n_tokens": None}
                for d in doc_ids]
    else:
        rows = [{"doc_id": s.doc_id, "query": s.query, "mean_logprob": s.mean_logprob, "n_tokens": s.n_tokens,
                 "raw": s.raw}
                for s in generate_queries(corpus, doc_ids, model=model, max_doc_tokens=max_doc_tokens,
                                          max_new_tokens=max_new_tokens)]
    frame = pd.DataFrame(rows)
    frame["title"] = [corpus[d].title for d in frame["doc_id"]]
    frame["kept"] = inpars_filter(frame, keep_fraction, min_tokens)
    return frame


def inpars_filter(queries, keep_fraction: float = 1.0, min_tokens: int = 0):
    """InPars-v1's filter (zetaalphavector/InPars legacy/inpars-v1/filter_queries_by_score.py, run with
    `--top_k 10000 --scoring_function mean_log_probs` on 100,000 generated queries): a query is kept when it parsed,
    has at least `min_tokens` generated tokens (an unknown count passes) and is among the max(1, round(keep_fraction
    x generated)) best of those by mean log-probability (ties: in sample order). A bool Series on `queries`' index
    (columns query, mean_logprob, n_tokens)."""
    eligible = queries["query"].notna() & ~(queries["n_tokens"].astype(float) < min_tokens)
    if keep_fraction >= 1.0:
        return eligible
    best = queries.loc[eligible, "mean_logprob"].sort_values(ascending=False, kind="stable")
    top = best.index[: max(1, round(keep_fraction * len(queries)))]
    return eligible & queries.index.isin(top)


def filter_counts(queries) -> dict:
    """What the filter did to a query_table: generated, parsed, kept."""
    return {"generated": len(queries), "parsed": int(queries["query"].notna().sum()), "kept": int(queries["kept"].sum())}


def sample_negatives(ranking: Run, positives: Mapping[str, str], n_negatives: int = 9, seed: int = 13) -> Run:
    """For each query, its positive document plus `n_negatives` documents drawn uniformly (seeded) from its
    `ranking` (e.g. the BM25 top-1000) other than the positive; the kept documents keep their ranking scores
    (the positive gets its own, or the lowest score minus one when the ranking missed it)."""
    rng = random.Random(seed)
    out: Run = {}
    for qid in sorted(positives):
        docs = dict(ranking.get(qid, {}))
        pos = positives[qid]
        pool = [d for d, _ in ranked(docs) if d != pos]
        chosen = rng.sample(pool, min(n_negatives, len(pool)))
        floor = min(docs.values(), default=0.0) - 1.0
        out[qid] = {pos: docs.get(pos, floor), **{d: docs[d] for d in chosen}}
    return out


# ------------------------------------------------------------------------------- HopWeaver's contrastive generator
# HopWeaver (Zh1yuShen/HopWeaver, hopweaver/train_reranker/contrastive_data_generator.py): pick a source document,
# let an LLM propose a bridge query from it (the seed's entity extractor: a bridge entity and an "expanded query"
# aimed at information COMPLEMENTARY to the source), retrieve candidates with the diverse retriever
# (retrievers.diverse), and let an LLM judge each candidate (the seed asks it to build a two-hop question through the
# bridge entity from the source and the candidate; success = positive). A line `{query, pos, neg}`
# (data.hopweaver) is written when at least one positive and one negative were found; the seed stops judging once it
# has one of each (`stop_when_both`). Offline the LLM is SmolLM2-135M-Instruct; the judge can be replaced by the
# qrels of a labelled collection (`QrelsJudge`, the documented fallback) or a score threshold (`ScoreJudge`). The
# seed's prompts ask for a delimited multi-field output that a 135M model cannot produce; the prompts below keep
# their instructions in a short form with a one-line answer, and the proposer's decoding can be held to that
# answer's format (`AnswerFormat`), so every answer parses. The judge's answer is already held to Yes / No (its
# P(Yes) is normalised over the two tokens).

# The seed's ENTITY_EXTRACTION_PROMPT, in short: one bridge entity of the document and one 10-20 word query for
# information about it that the document does NOT hold (the seed's "instead of / beyond" steering).
HOPWEAVER_QUERY_PROMPT = (
    "Read the document. Pick one important entity in it (a concept, substance, gene, disease, method or event) "
    "that other documents also discuss. Write one search query of 10 to 20 words about that entity that looks for "
    "information NOT in this document (use words like 'beyond' or 'instead of').\n\n"
    "Document: {document}\n\n"
    "Answer with one line in the form: Entity: <entity> | Query: <query>"
)
# The same request as a completion with two demonstrations (the prompt of the 'format' decoding): a 135M model asked
# by the chat prompt above copies its '<entity>' / '<query>' placeholders or restates the title, while it follows a
# demonstrated pattern (InPars's way: a few-shot completion). The two demonstrations are HopWeaver's own published
# bridge queries (Zh1yuShen/HopWeaver @65d5a1a hopweaver/train_reranker/data/train_data_sample.jsonl lines 1 and 5,
# the seed's entity_query: 'X aspect beyond / instead of Y'), each after the first 60 words of that line's positive
# passage, a document that mentions the entity; the entity named is the query's head. The first line is ours.
HOPWEAVER_QUERY_EXAMPLES = (
    ("Concord, Tippecanoe County, Indiana Concord is a small unincorporated community in Lauramie Township, Tippecanoe "
     "County, Indiana, located just west of Stockwell. The community is part of the Lafayette, Indiana Metropolitan "
     "Statistical Area. A post office was established at Concord in 1837, and remained in operation until it was "
     "discontinued in 1868. Concord is located in Lauramie Township around the intersection",
     "Lauramie Township", "Lauramie Township history and demographics beyond its location in Tippecanoe County"),
    ("James Rudolph Garfield James Rudolph Garfield (October 17, 1865 – March 24, 1950) was an American politician and "
     "lawyer. Garfield was a son of President James A. Garfield and First Lady Lucretia Garfield. He served as "
     "Secretary of the Interior during Theodore Roosevelt's administration. Garfield was born in Hiram, Ohio, the third "
     "of seven children born to James Abram and",
     "James A. Garfield", "James A. Garfield political career instead of Garfield Township namesake"),
)
HOPWEAVER_QUERY_FEWSHOT = (
    "Each document is followed by one entity it mentions and a search query for information about that entity that "
    "the document does not give.\n\n"
    + "".join(f"Document: {d}\nEntity: {e} | Query: {q}\n\n" for d, e, q in HOPWEAVER_QUERY_EXAMPLES).replace(
        "{", "{{").replace("}", "}}")
    + "Document: {document}\n"
)
# The seed's SUB_QUESTION_GENERATION_PROMPT, in short: does candidate B continue a two-hop chain from the source A
# through the bridge query (else INVALID_BRIDGE_CONNECTION)? Answered by the first token, Yes or No, in one forward
# pass. {query} receives the query and the source (so that only document B is ever truncated).
HOPWEAVER_JUDGE_PROMPT = (
    "Query: {query}\n\nDocument B: {passage}\n\n"
    "Does Document B give information that answers the query and goes beyond Document A (when one is given), so "
    "that a two-step question can lead from Document A to Document B? Answer Yes or No."
)

_BRIDGE_QUERY_RE = re.compile(r"query\s*[:\-]\s*(.+)", re.IGNORECASE)
_BRIDGE_ANSWER_RE = re.compile(r"^\s*Entity:\s*(\S.*?)\s*\|\s*Query:\s*(\S.*?)\s*$")


def in_bridge_format(text: str) -> bool:
    """Whether an answer is exactly the one line the proposer's prompts ask for: 'Entity: <e> | Query: <q>'."""
    return isinstance(text, str) and bool(_BRIDGE_ANSWER_RE.match(text.strip()))


def parse_bridge_query(text: str, min_words: int = 3, max_words: int = 40) -> str | None:
    """The query of an 'Entity: ... | Query: ...' answer (or the first usable line); None when unusable."""
    if not isinstance(text, str):
        return None
    match = _BRIDGE_QUERY_RE.search(text)
    candidate = match.group(1) if match else next((line for line in text.splitlines() if line.strip()), "")
    candidate = candidate.split("\n")[0].strip().strip('"').strip()
    words = candidate.split()
    return " ".join(words[:max_words]) if len(words) >= min_words else None


@dataclass(frozen=True)
class Slot:
    """A free span of an answer format: `min_tokens` to `max_tokens` tokens, none holding a character of `banned`
    (those that would end or break the format)."""

    min_tokens: int = 1
    max_tokens: int = 16
    banned: str = "|\n"


class AnswerFormat:
    """Greedy decoding held to a format of literal texts and free slots, as transformers' prefix_allowed_tokens_fn:
    a literal is forced token by token; a slot allows every token without a banned character (special tokens and
    the tokens that close it never), and it closes when the model picks the first token of the literal after it (the
    end, after the last part): allowed from its `min_tokens`-th token on, the only choice at its `max_tokens`-th.
    After the last part only the end tokens are allowed. So every completion has the format, whatever the model.

    `token_texts[i]`: token i's text (None: never allowed in a slot, e.g. a special token); `parts`: literals as
    token ids and Slots, never two slots in a row (where one would end is then unknown)."""

    def __init__(self, token_texts: Sequence[str | None], parts: Sequence[Sequence[int] | Slot],
                 end_ids: Sequence[int]):
        self.parts = [p if isinstance(p, Slot) else [int(t) for t in p] for p in parts]
        self.end_ids = sorted({int(t) for t in end_ids})
        if not self.parts or not self.end_ids:
            raise ValueError("an answer format needs parts and end tokens")
        for i, part in enumerate(self.parts):
            if not isinstance(part, Slot) and not part:
                raise ValueError(f"part {i}: a literal of no tokens")
            if isinstance(part, Slot) and i + 1 < len(self.parts) and isinstance(self.parts[i + 1], Slot):
                raise ValueError(f"parts {i} and {i + 1}: two slots in a row")
            if isinstance(part, Slot) and not 1 <= part.min_tokens <= part.max_tokens:
                raise ValueError(f"part {i}: a slot needs 1 <= min_tokens <= max_tokens, got {part}")
        self._slot_ids: dict[int, list[int]] = {}
        for i, part in enumerate(self.parts):
            if isinstance(part, Slot):
                closing = set(self.closers(i))
                self._slot_ids[i] = [t for t, text in enumerate(token_texts) if text and t not in closing
                                     and t not in self.end_ids and not any(c in text for c in part.banned)]
        self._slot_sets = {i: set(ids) for i, ids in self._slot_ids.items()}

    @classmethod
    def for_tokenizer(cls, tokenizer, parts: Sequence[str | Slot], end_texts: Sequence[str] = ("\n",)):
        """The format over a Hugging Face tokenizer: literal texts tokenised without special tokens, each token's
        text decoded on its own, special tokens kept out of slots; the end: the tokenizer's EOS and `end_texts`."""
        special = set(tokenizer.all_special_ids)
        texts = [None if i in special else text
                 for i, text in enumerate(tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))]
        ends = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ends += [ids[0] for ids in (tokenizer.encode(t, add_special_tokens=False) for t in end_texts) if len(ids) == 1]
        return cls(texts, [p if isinstance(p, Slot) else tokenizer.encode(p, add_special_tokens=False) for p in parts],
                   ends)

    @property
    def max_new_tokens(self) -> int:
        """The longest completion the format allows (its end token included)."""
        return sum(p.max_tokens if isinstance(p, Slot) else len(p) for p in self.parts) + 1

    def closers(self, i: int) -> list[int]:
        """The tokens that close slot `i`: the next literal's first token, or the end tokens."""
        return [self.parts[i + 1][0]] if i + 1 < len(self.parts) else self.end_ids

    def state(self, generated: Sequence[int]) -> tuple[int, int]:
        """(part, tokens of it emitted) after `generated`; part == len(parts) once the format is complete. A token
        the format does not allow raises ValueError."""
        part, n = 0, 0
        for step, token in enumerate(generated):
            if not self._permits(part, n, token):
                raise ValueError(f"token {token} at step {step} is outside the format")
            if part == len(self.parts):
                n += 1
            elif isinstance(self.parts[part], Slot) and token in self.closers(part):
                part, n = part + 1, 1  # the next literal's first token is out (or the end)
                if part < len(self.parts) and n == len(self.parts[part]):
                    part, n = part + 1, 0
            else:
                n += 1
                if not isinstance(self.parts[part], Slot) and n == len(self.parts[part]):
                    part, n = part + 1, 0
        return part, n

    def allowed(self, generated: Sequence[int]) -> list[int]:
        """The tokens the format allows next, after the completion's tokens so far."""
        part, n = self.state(generated)
        if part == len(self.parts):
            return self.end_ids
        current = self.parts[part]
        if not isinstance(current, Slot):
            return [current[n]]
        if n < current.min_tokens:
            return self._slot_ids[part]
        return self.closers(part) if n >= current.max_tokens else self._slot_ids[part] + self.closers(part)

    def _permits(self, part: int, n: int, token: int) -> bool:
        """Whether `allowed` holds `token` in state (part, n), without building the list."""
        if part == len(self.parts):
            return token in self.end_ids
        current = self.parts[part]
        if not isinstance(current, Slot):
            return token == current[n]
        free = n < current.max_tokens and token in self._slot_sets[part]
        return free or (n >= current.min_tokens and token in self.closers(part))

    def prefix_allowed_tokens_fn(self, prompt_length: int) -> Callable:
        """The function `generate(prefix_allowed_tokens_fn=...)` takes, for prompts of `prompt_length` tokens."""
        return lambda batch_id, input_ids: self.allowed(input_ids[prompt_length:].tolist())


#: the proposer's answer: the entity (1-12 tokens), the query (4-40 tokens), one line
BRIDGE_ANSWER_FORMAT = ("Entity:", Slot(1, 12), " | Query:", Slot(4, 40))
#: 'format': HOPWEAVER_QUERY_FEWSHOT completed, held to BRIDGE_ANSWER_FORMAT | 'free': HOPWEAVER_QUERY_PROMPT as a
#: chat, free greedy text parsed afterwards (the seed's way)
PROPOSER_DECODING = ("format", "free")


class Judge(Protocol):
    def __call__(self, query_id: str, query: str, source: Document | None, candidates: Sequence[Document]
                 ) -> list[bool]: ...


class LLMQueryProposer:
    """Greedy generation of a bridge query from a source document with a chat LLM (SmolLM2 offline). decoding
    'format': the few-shot completion (`prompt` default HOPWEAVER_QUERY_FEWSHOT) held to BRIDGE_ANSWER_FORMAT
    (AnswerFormat), one line that always parses; 'free': the chat prompt (default HOPWEAVER_QUERY_PROMPT) answered
    freely (up to max_new_tokens) and parsed afterwards (parse_bridge_query)."""

    def __init__(self, model_name: str = "smollm2-135m-instruct", max_new_tokens: int = 48, max_doc_tokens: int = 256,
                 prompt: str | None = None, device=None, decoding: str = "format"):
        if decoding not in PROPOSER_DECODING:
            raise ValueError(f"decoding must be one of {PROPOSER_DECODING}, got {decoding!r}")
        self.device = device or pick_device()
        self.tokenizer = load_tokenizer(model_name)  # the judge's LM too: the GGUF is de-quantised once per machine
        self.model = load_causal_lm(model_name, device=self.device)
        self.format = AnswerFormat.for_tokenizer(self.tokenizer, BRIDGE_ANSWER_FORMAT) if decoding == "format" else None
        self.model_name, self.max_new_tokens, self.max_doc_tokens = model_name, max_new_tokens, max_doc_tokens
        self.prompt = prompt or (HOPWEAVER_QUERY_PROMPT if self.format is None else HOPWEAVER_QUERY_FEWSHOT)
        self.raw: list[str] = []  # every generation, for the notebook to show

    def prompt_text(self, document: Document) -> str:
        """The prompt for one source (its first max_doc_tokens tokens): a chat turn ('free'), a completion ('format',
        which the format then begins with 'Entity:')."""
        ids = self.tokenizer.encode(document.text_for_model, add_special_tokens=False)[: self.max_doc_tokens]
        text = self.prompt.format(document=self.tokenizer.decode(ids))
        if self.format is not None:
            return text
        return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                  add_generation_prompt=True)

    def __call__(self, document: Document) -> str | None:
        enc = self.tokenizer(self.prompt_text(document), return_tensors="pt", add_special_tokens=False).to(self.device)
        held = {} if self.format is None else {
            "max_new_tokens": self.format.max_new_tokens, "eos_token_id": self.format.end_ids,
            "prefix_allowed_tokens_fn": self.format.prefix_allowed_tokens_fn(enc["input_ids"].shape[1])}
        with torch.inference_mode():
            out = self.model.generate(**enc, do_sample=False, **{"max_new_tokens": self.max_new_tokens, **held},
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        answer = self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        self.raw.append(answer)
        return parse_bridge_query(answer)


class LLMJudge:
    """P(Yes) of HOPWEAVER_JUDGE_PROMPT at the first generated step (one forward pass per candidate, a DecoderReranker with the
    chat prompt); positive at or above `threshold`."""

    def __init__(self, scorer, threshold: float = 0.5, max_source_words: int = 60):
        self.scorer, self.threshold, self.max_source_words = scorer, threshold, max_source_words

    @classmethod
    def for_model(cls, model_name: str = "smollm2-135m-instruct", max_length: int = 192, threshold: float = 0.5,
                  **kwargs) -> "LLMJudge":
        from .rerankers.llm_reranker import DecoderReranker, PromptFormat

        fmt = PromptFormat(kind="chat", chat_prompt=HOPWEAVER_JUDGE_PROMPT, max_query_fraction=0.45)
        return cls(DecoderReranker(model_name, head="yes", prompt=fmt, max_length=max_length), threshold, **kwargs)

    def query_text(self, query: str, source: Document | None) -> str:
        src = " ".join(source.text_for_model.split()[: self.max_source_words]) if source is not None else "(none)"
        return f"{query}\n\nDocument A: {src}"

    def probabilities(self, query: str, source: Document | None, candidates: Sequence[Document]) -> np.ndarray:
        return self.scorer.yes_probability([self.query_text(query, source)] * len(candidates),
                                           [c.text_for_model for c in candidates])

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        return [bool(p >= self.threshold) for p in self.probabilities(query, source, candidates)]


def judge_quality(judge: LLMJudge, retriever, claims: Mapping[str, str], qrels: Qrels, top_k: int, label: str,
                  encoder: str = "dense", seed: int = 13):
    """A judge's P(Yes) on each claim's diverse top_k candidates against the qrels (AUC, accuracy at its threshold),
    beside the retriever's cosine and chance: (table, info). Decides whether the judge may label training data."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    found = retriever.diverse(claims, top_k=top_k)
    pairs = [(q, d) for q in claims for d, _ in ranked(found[q])]
    truth = np.array([qrels.get(q, {}).get(d, 0) > 0 for q, d in pairs])
    start = time.perf_counter()
    probs = np.concatenate([judge.probabilities(claims[q], None, [retriever.corpus[d] for d, _ in ranked(found[q])])
                            for q in claims])
    wall_s = time.perf_counter() - start
    both = truth.any() and (~truth).any()
    auc = lambda scores: round(float(roc_auc_score(truth, scores)), 3) if both else float("nan")  # noqa: E731
    yes = probs >= judge.threshold
    table = pd.DataFrame([
        {"judge": f"{label} P(Yes) (>= {judge.threshold})", "AUC vs qrels": auc(probs),
         "accuracy": round(float((yes == truth).mean()), 3), "says positive": round(float(yes.mean()), 3)},
        {"judge": f"{encoder} cosine", "AUC vs qrels": auc(retriever.cosines(claims, pairs))},
        {"judge": "chance (random scores)", "AUC vs qrels": auc(np.random.default_rng(seed).random(len(truth)))},
        {"judge": "qrels (truth)", "AUC vs qrels": 1.0, "accuracy": 1.0, "says positive": round(float(truth.mean()), 3)},
    ]).set_index("judge")
    info = {"pairs": len(pairs), "claims": len(claims), "relevant pairs": int(truth.sum()), "wall_s": round(wall_s, 1),
            "mean P(Yes) relevant": float(probs[truth].mean()) if truth.any() else float("nan"),
            "mean P(Yes) other": float(probs[~truth].mean()) if (~truth).any() else float("nan")}
    return table, info


class QrelsJudge:
    """The documented fallback judge on a labelled collection: positive iff judged relevant (grade >= min_grade)."""

    def __init__(self, qrels: Qrels, min_grade: int = 1):
        self.qrels, self.min_grade = qrels, min_grade

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        judged = self.qrels.get(query_id, {})
        return [judged.get(c.doc_id, 0) >= self.min_grade for c in candidates]


class ScoreJudge:
    """Positive iff a scorer's value for (query, candidate) reaches `threshold` (e.g. a teacher's cosine)."""

    def __init__(self, score_fn: Callable[[str, Sequence[str]], Sequence[float]], threshold: float):
        self.score_fn, self.threshold = score_fn, threshold

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        return [float(s) >= self.threshold for s in self.score_fn(query, [c.text_for_model for c in candidates])]


def generate_contrastive_data(
    retriever, judge: Judge, *, sources: Mapping[str, str | None] | None = None,
    queries: Mapping[str, str] | None = None, proposer: Callable[[Document], str | None] | None = None,
    top_k: int = 10, stop_when_both: bool = True, max_examples: int | None = None,
) -> list[GeneratedExample]:
    """Run the generator over attempts; returns every attempt (usable ones have a query, >= 1 pos and >= 1 neg).

    Two ways to get each attempt's query:
      proposer + sources {attempt id: source doc id}: the LLM proposes a bridge query from the source (the seed);
      queries {attempt id: text} (+ optional sources): given queries, e.g. a collection's own questions when the
        judge is its qrels (the fallback; the attempt id is then the query id the qrels know).
    Candidates come from retriever.diverse (source removed); the judge labels them in retrieval order, stopping
    once one positive and one negative are found when stop_when_both (the seed's rule, which saves LLM calls).
    """
    if (proposer is None) == (queries is None):
        raise ValueError("give exactly one of proposer (with sources) or queries")
    if proposer is not None and not sources:
        raise ValueError("a proposer needs sources: {attempt id: source document id}")
    sources = dict(sources or {})
    attempt_ids = list(queries) if queries is not None else list(sources)
    for aid in attempt_ids:
        src = sources.get(aid)
        if src is not None and src not in retriever.corpus:
            raise KeyError(f"attempt {aid}: source document {src!r} is not in the corpus")
    examples: list[GeneratedExample] = []
    for aid in attempt_ids:
        if max_examples is not None and sum(e.usable for e in examples) >= max_examples:
            break
        src_id = sources.get(aid)
        source = retriever.corpus[src_id] if src_id is not None else None
        query = queries[aid] if queries is not None else proposer(source)
        example = GeneratedExample(aid, query, src_id)
        examples.append(example)
        if not query:
            continue
        found = retriever.diverse({aid: query}, top_k=top_k, sources={aid: src_id})[aid]
        docs = [retriever.corpus[d] for d, _ in ranked(found)]
        if stop_when_both:
            for doc in docs:  # one judgement at a time, as the seed validates one candidate per LLM call
                verdict = judge(aid, query, source, [doc])[0]
                example.candidates.append(doc.doc_id)
                example.verdicts.append(bool(verdict))
                if example.pos and example.neg:
                    break
        else:
            example.candidates = [d.doc_id for d in docs]
            example.verdicts = [bool(v) for v in judge(aid, query, source, docs)]
    return examples
