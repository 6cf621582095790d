"""InPars-style synthetic queries (Bonifacio et al., 2022; zetaalphavector/InPars), the target-domain data of
InRanker's stage 2: an LLM reads a document after a fixed 3-shot prompt and writes a query for it; each query gets
9 negatives sampled from the BM25 top-1000 of the same corpus, and the teacher labels all 10 pairs.

The prompt is InPars-v1's "vanilla" prompt (legacy/inpars-v1/prompts/vanilla_prompt.txt: three MS MARCO
document -> "Relevant Query" examples, then the target document), the one behind the InPars-v1 queries InRanker
distils on. As in InPars, the document is cut to `max_doc_tokens` tokens of the generator's tokenizer, decoding is
greedy and stops at the first newline, and the mean log-probability of the generated tokens is kept (InPars-v1
filters its queries by it). Offline the generator is SmolLM2-135M-Instruct (a raw completion, no chat template,
like the base LMs InPars used); online any causal LM id. The 3-shot prefix is identical for every document, so its
key/value cache is computed once and reused (the generated text is the same as without it).

Generations are cached on disk per (generator, prompt, settings, document text), so a second run costs nothing.
The documents come from the corpus only: no query or judgment of any split is read here.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from .progress import tqdm

from .atomic import atomic_open
from .data.trec import ranked
from .data.types import Document, Run
from .models import load_model, load_tokenizer, pick_device
from .paths import cache_dir

__all__ = ["INPARS_VANILLA_PROMPT", "SyntheticQuery", "QueryGenerator", "build_prompt", "parse_query",
           "sample_documents", "sample_negatives", "generate_queries"]

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
_PROMPT_HEAD, _PROMPT_TAIL = INPARS_VANILLA_PROMPT.split(" {document_text}")  # head ends with "Document:"


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

    @property
    def qid(self) -> str:
        return f"syn-{self.doc_id}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
        return {"model": self.model_name, "template_sha": _sha(self.template), "max_doc_tokens": self.max_doc_tokens,
                "max_new_tokens": self.max_new_tokens, "decoding": "greedy, stop at newline"}

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
    def generate_one(self, document: str) -> tuple[str, float]:
        """(completion text, mean log-probability of its tokens) for one document."""
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
        return text, float(np.mean(logps)) if logps else float("-inf")


def generate_queries(corpus: Mapping[str, Document], doc_ids: Sequence[str], generator: QueryGenerator | None = None,
                     model: str = "smollm2-135m-instruct", max_doc_tokens: int = 256, max_new_tokens: int = 32,
                     cache: bool = True, save_every: int = 8) -> list[SyntheticQuery]:
    """One synthetic query per document id, from the disk cache where possible (written atomically every
    `save_every` generations, so an interrupted run resumes). The generator is loaded only when something is
    missing from the cache."""
    settings = generator.settings() if generator else {
        "model": str(model), "template_sha": _sha(INPARS_VANILLA_PROMPT), "max_doc_tokens": max_doc_tokens,
        "max_new_tokens": max_new_tokens, "decoding": "greedy, stop at newline"}
    path = cache_dir("synthetic_queries") / f"{_sha(json.dumps(settings, sort_keys=True))}.jsonl" if cache else None
    known: dict[tuple[str, str], SyntheticQuery] = {}
    if path is not None and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                known[(row["doc_id"], row["doc_sha"])] = SyntheticQuery(**row)
    out, todo = [], []
    for d in doc_ids:
        key = (d, _sha(corpus[d].text_for_model))
        if key in known:
            out.append(known[key])
        else:
            todo.append(key)
    if todo:
        generator = generator or QueryGenerator(model, max_doc_tokens, max_new_tokens)
        for n, (d, sha) in enumerate(tqdm(todo, desc="synthetic queries", unit="query"), start=1):
            raw, logp = generator.generate_one(corpus[d].text_for_model)
            known[(d, sha)] = SyntheticQuery(d, parse_query(raw), raw, logp, sha)
            if path is not None and (n % save_every == 0 or n == len(todo)):
                _save(path, known.values())
        out = [known[(d, _sha(corpus[d].text_for_model))] for d in doc_ids]
    return out


def _save(path: Path, rows: Iterable[SyntheticQuery]) -> None:
    with atomic_open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


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
