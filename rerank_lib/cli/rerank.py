"""`rerank`: re-score the top of a TREC run with a trained (or built-in) reranker, through the rankers' one protocol
`rerank(run, corpus, queries, depth) -> Run`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..data.corpus_files import read_corpus_file, read_queries_file
from ..data.trec import top_k, write_run
from .common import (UsageError, add_command, add_precision, check_candidates, check_output, load_run,
                     positive_int)

KINDS = ("cross-encoder", "monot5", "llm", "listwise")
#: A reranker must be trained (offline there is no trained one to download): train one, then rerank with it.
EXAMPLE = ("rerank-repro train cross_encoder --profile smoke --output_dir ce-model  # a trained cross-encoder\n"
           "  rerank-repro rerank bm25.trec --corpus corpus.tsv --queries queries.tsv --model ce-model --depth 100 "
           "--output ce.trec")
#: Pairs per progress step: queries are reranked a few at a time (the bar moves per batch of queries).
PAIRS_PER_STEP = 1024


def add_parser(commands) -> None:
    sub = add_command(commands, "rerank", "Rerank the top --depth documents of every query of RUN; writes a TREC run "
                      "of those documents (deeper ones are dropped).", EXAMPLE, run)
    sub.add_argument("run", metavar="RUN", help="the first-stage TREC run")
    sub.add_argument("--corpus", required=True, metavar="PATH",
                     help="the documents: a BEIR folder, id<TAB>text .tsv or .jsonl")
    sub.add_argument("--queries", required=True, metavar="PATH",
                     help="the queries: a BEIR folder, .jsonl, qid<TAB>query .tsv or a TREC topics file")
    sub.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                     help="a trained reranker: a folder saved by this project's training (rerank-repro train ... "
                          "--output_dir), a sentence-transformers CrossEncoder folder, or a hub id (online). The "
                          "built-ins minilm-l6 and minilm-monot5 have untrained heads (see --allow-untrained-head)")
    sub.add_argument("--allow-untrained-head", action="store_true",
                     help="rerank even when loading initialised the model's score head afresh (random scores: "
                          "for smoke tests, not for results)")
    sub.add_argument("--kind", choices=KINDS,
                     help="the ranker; default: read from the model's folder or config (cross_encoder.json or an "
                          "encoder-only model: cross-encoder; decoder_reranker.json: llm; an encoder-decoder: monot5); "
                          "a plain causal LM needs --kind llm or --kind listwise")
    sub.add_argument("--depth", type=positive_int, default=100, help="candidates reranked per query (default 100)")
    sub.add_argument("--batch-size", type=positive_int,
                     help="pairs per forward pass (pointwise kinds; default: the ranker's own)")
    sub.add_argument("--tag", help="the run's tag column (default: the model's name)")
    add_precision(sub)
    sub.add_argument("--output", required=True, metavar="RUN", help="where the reranked run is written (atomically)")


def detect_kind(model: str) -> str:
    """The ranker a model name or folder needs, from the files this project saves or the model's config."""
    from ..models import resolve
    from ..rerankers.cross_encoder import CONFIG_FILE as CROSS_ENCODER_FILE
    from ..rerankers.llm_reranker import CONFIG_FILE as DECODER_FILE
    from ..rerankers.monot5 import STUDENTS

    if model in STUDENTS:
        return "monot5"
    folder = Path(model).expanduser()
    if folder.is_dir():
        if (folder / CROSS_ENCODER_FILE).exists():
            return "cross-encoder"
        if (folder / DECODER_FILE).exists():
            return "llm"
        if not (folder / "config.json").exists():
            raise UsageError(f"{folder} has no config.json, {CROSS_ENCODER_FILE} or {DECODER_FILE}: not a model "
                             f"folder this command can read")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    else:
        resolved = resolve(model)
        if resolved.gguf_file:
            config = {"architectures": ["ForCausalLM"]}
        else:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolved.source, **resolved.from_pretrained_kwargs()).to_dict()
    architectures = config.get("architectures") or []
    if config.get("is_encoder_decoder") or any(a.endswith(("ForConditionalGeneration", "EncoderDecoderModel"))
                                               for a in architectures):
        return "monot5"
    if any(a.endswith("ForCausalLM") for a in architectures):
        raise UsageError(f"{model} is a causal LM: pass --kind llm (a pointwise score/yes head) or --kind listwise "
                         f"(RankZephyr-style windows)")
    return "cross-encoder"


def build_ranker(kind: str, model: str, batch_size: int | None):
    """(ranker, rerank function taking (run, corpus, queries, depth)); the precision is the process setting
    (models.precision_scope)."""
    folder = Path(model).expanduser()
    options = {"batch_size": batch_size} if batch_size else {}
    if kind == "cross-encoder":
        from ..rerankers.cross_encoder import CrossEncoder

        ranker = CrossEncoder.load(folder) if folder.is_dir() else CrossEncoder(model)
        return ranker, lambda r, c, q, d: ranker.rerank(r, c, q, depth=d, **options)
    if kind == "monot5":
        from ..rerankers.monot5 import T5Ranker

        ranker = T5Ranker(model, **options)
        return ranker, ranker.rerank
    if kind == "llm":
        from ..rerankers.llm_reranker import CONFIG_FILE, DecoderReranker

        ranker = DecoderReranker.load(folder) if (folder / CONFIG_FILE).exists() else DecoderReranker(model)
        return ranker, lambda r, c, q, d: ranker.rerank(r, c, q, depth=d, **options)
    if batch_size:
        raise UsageError("--batch-size applies to the pointwise kinds; a listwise ranker reads one window at a time")
    from transformers import AutoModelForCausalLM

    from ..listwise import ListwiseReranker
    from ..models import check_folder, load_model, load_tokenizer, precision_setting

    if precision_setting() == "bf16":
        raise UsageError("--precision bf16: the listwise ranker computes in fp32 only")
    if folder.is_dir():
        check_folder(folder, "listwise")
    tokenizer = load_tokenizer(model)
    if not tokenizer.chat_template:
        raise UsageError(f"{model}: its tokenizer has no chat template, which the listwise prompt needs")
    ranker = ListwiseReranker(load_model(model, AutoModelForCausalLM), tokenizer)
    return ranker, lambda r, c, q, d: ranker.rerank_run(r, c, q, depth=d, progress=False)[0]


def rerank_with_progress(rerank, candidates, corpus, queries, depth: int) -> dict:
    """`rerank` over a few queries at a time (about PAIRS_PER_STEP pairs), with a progress bar on stderr: a long
    rerank shows where it is instead of printing nothing for minutes."""
    from ..progress import tqdm

    qids = list(candidates)
    step = max(1, PAIRS_PER_STEP // max(1, depth))
    results = {}
    with tqdm(total=len(qids), desc="rerank", unit="query", file=sys.stderr) as bar:
        for start in range(0, len(qids), step):
            chunk = {q: candidates[q] for q in qids[start:start + step]}
            results.update(rerank(chunk, corpus, queries, depth))
            bar.update(len(chunk))
    return results


def run(args) -> int:
    from ..models import precision_scope

    out = check_output(args.output, args.run, args.corpus, args.queries)
    candidates = top_k(load_run(args.run), args.depth)
    corpus = read_corpus_file(args.corpus)
    queries = read_queries_file(args.queries)
    check_candidates(args.run, candidates, corpus, args.corpus, queries, args.queries)
    kind = args.kind or detect_kind(args.model)
    start = time.time()
    with precision_scope(args.precision):
        ranker, rerank = build_ranker(kind, args.model, args.batch_size)
        fresh = list(getattr(ranker, "fresh_head", None) or [])  # head weights loading initialised afresh
        if fresh and not args.allow_untrained_head:
            shown = ", ".join(fresh[:4]) + (f" and {len(fresh) - 4} more" if len(fresh) > 4 else "")
            raise UsageError(f"{args.model} has no trained {kind} head (loading initialised {shown} afresh): its "
                             "scores would be random. Rerank with a trained model (e.g. rerank-repro train "
                             "cross_encoder --profile smoke --output_dir DIR, then --model DIR), or pass "
                             "--allow-untrained-head")
        results = rerank_with_progress(rerank, candidates, corpus, queries, args.depth)
    tag = args.tag or f"{kind}-{args.model.rstrip('/').split('/')[-1]}"
    write_run(results, out, tag=tag.replace(" ", "_"))
    print(f"wrote {out}: {len(results)} queries, {sum(len(d) for d in results.values())} lines "
          f"({kind} {args.model}, depth {args.depth}, precision {args.precision}"
          f"{', untrained head' if fresh else ''}, {time.time() - start:.1f} s)")
    return 0
