"""`search`: first-stage retrieval over the user's corpus (rerank_lib.first_stage), written as a TREC run."""
from __future__ import annotations

import time

from ..data.corpus_files import read_corpus_file, read_queries_file
from ..data.trec import write_run
from .common import UsageError, add_command, add_precision, check_output, positive_int

EXAMPLE = "rerank-repro search --corpus corpus.tsv --queries queries.tsv --method bm25 --k 100 --output bm25.trec"
INPUTS = ("corpus: a BEIR folder, id<TAB>text .tsv, or .jsonl ({_id|id|docid, title?, text|contents}); "
          "queries: a BEIR folder, .jsonl, qid<TAB>query .tsv, or a TREC topics file")


def add_parser(commands) -> None:
    sub = add_command(commands, "search", "Retrieve the top k documents of every query with BM25 or a dense "
                      "encoder; writes a TREC run.", EXAMPLE, run)
    sub.description += f" Inputs: {INPUTS}."
    sub.add_argument("--corpus", required=True, metavar="PATH", help="the documents")
    sub.add_argument("--queries", required=True, metavar="PATH", help="the queries")
    sub.add_argument("--method", required=True, choices=("bm25", "dense"),
                     help="bm25 (bm25s, Lucene BM25 k1=0.9 b=0.4, English stemming and stop words) or dense "
                          "(exact dot-product search over --model's embeddings)")
    sub.add_argument("--model", metavar="NAME_OR_PATH",
                     help="dense only: a bi-encoder, e.g. the offline built-in minilm-l6 (default), a folder or "
                          "a hub id; a sentence-transformers folder is encoded with its own pooling, "
                          "normalisation, max length and query/document prompts")
    sub.add_argument("--k", type=positive_int, default=1000, help="documents kept per query (default 1000)")
    sub.add_argument("--tag", help="the run's tag column (default: the method, and the model for dense)")
    add_precision(sub)
    sub.add_argument("--output", required=True, metavar="RUN", help="where the TREC run is written (atomically)")


def run(args) -> int:
    if args.method == "bm25" and args.model:
        raise UsageError("--model applies to --method dense only")
    if args.method == "bm25" and args.precision != "fp32":
        raise UsageError("--precision applies to --method dense only (BM25 computes no model)")
    out = check_output(args.output, args.corpus, args.queries)
    corpus = read_corpus_file(args.corpus)
    queries = read_queries_file(args.queries)
    from ..first_stage import bm25_search, dense_search

    start = time.time()
    if args.method == "bm25":
        results = bm25_search(corpus, queries, k=args.k)
        tag = args.tag or "bm25"
    else:
        from ..models import precision_scope
        from ..retrievers import BiEncoder

        model = args.model or "minilm-l6"
        with precision_scope(args.precision):
            results = dense_search(BiEncoder(model), corpus, queries, k=args.k)
        tag = args.tag or f"dense-{model.rstrip('/').split('/')[-1]}"
    write_run(results, out, tag=tag.replace(" ", "_"))
    empty = sum(1 for docs in results.values() if not docs)
    print(f"wrote {out}: {len(results)} queries, {sum(len(d) for d in results.values())} lines "
          f"({args.method}, {len(corpus)} documents, k={args.k}"
          f"{f', precision {args.precision}' if args.method == 'dense' else ''}, {time.time() - start:.1f} s)")
    if empty:
        print(f"note: {empty} queries found no document (BM25 leaves out documents sharing no term)")
    return 0
