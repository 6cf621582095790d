"""`evaluate`: a TREC run against qrels, the project's way (rerank_lib.evaluation): judged queries only, a judged
query missing from the run scores 0, measures by ir-measures names."""
from __future__ import annotations

import json
import math
import sys

from tabulate import tabulate

from ..data.errors import DataFormatError
from ..data.trec import read_qrels
from .common import UsageError, add_command, load_run

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100")
EXAMPLE = "rerank-repro evaluate run.trec qrels.txt -m nDCG@10 -m ndcg_cut_10 -m recip_rank --compare bm25.trec"


def measure_names(given: list[str]) -> list[str]:
    """ir-measures names (nDCG@10, RR(rel=2)@10) or trec_eval names (ndcg_cut_10, recip_rank, map, recall_100,
    P_10, map_cut_10, ndcg), each to its canonical ir-measures name, duplicates dropped, order kept."""
    import ir_measures

    from ..evaluation import measure_name

    names: list[str] = []
    for text in given:
        try:
            found = [measure_name(text)]
        except ValueError:
            try:
                found = [str(m) for m in ir_measures.parse_trec_measure(text.strip())]
            except (ValueError, NameError, TypeError, SyntaxError):
                raise UsageError(f"unknown measure {text!r}: use ir-measures names (nDCG@10, RR@10, R@100, AP, "
                                 f"P@10, RR(rel=2)@10) or trec_eval names (ndcg_cut_10, recip_rank, map)") from None
        names += [n for n in found if n not in names]
    return names


def add_parser(commands) -> None:
    sub = add_command(commands, "evaluate", "Score a TREC run against qrels (means over the judged queries).",
                      EXAMPLE, run)
    sub.add_argument("run", metavar="RUN", help="TREC run file: qid Q0 docid rank score tag")
    sub.add_argument("qrels", metavar="QRELS", help="TREC qrels (qid 0 docid grade) or BEIR qrels tsv")
    sub.add_argument("-m", "--measure", action="append", metavar="NAME",
                     help=f"a measure, repeatable (default: {' '.join(DEFAULT_MEASURES)})")
    sub.add_argument("--per-query", action="store_true", help="also print one row per judged query")
    sub.add_argument("--compare", metavar="OTHER_RUN",
                     help="baseline run: adds its means, delta = RUN - OTHER_RUN and the paired test's p")
    sub.add_argument("--test", choices=("t", "randomization"), default="t",
                     help="paired test for --compare: scipy's paired t-test (default, as the project's tables) or "
                          "a seeded sign-flip randomization test")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of text tables")


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def run(args) -> int:
    from ..evaluation import evaluate, paired_test, per_query

    names = measure_names(args.measure or list(DEFAULT_MEASURES))
    if args.test != "t" and not args.compare:
        raise UsageError("--test applies to --compare only")
    the_run, qrels = load_run(args.run), read_qrels(args.qrels)
    if not qrels:
        raise DataFormatError(args.qrels, None, None, "no judgments: the file is empty or holds only blank lines")
    means = evaluate(the_run, qrels, names)
    unjudged = [q for q in the_run if q not in qrels]
    missing = [q for q in qrels if q not in the_run]
    notes = []
    if missing:
        notes.append(f"{len(missing)} judged queries have no results in {args.run} and score 0, e.g. {missing[:3]}")
    if unjudged:
        notes.append(f"{len(unjudged)} queries of {args.run} have no judgments and are not counted")
    report = {"run": args.run, "qrels": args.qrels, "judged_queries": len(qrels), "measures": means}
    rows = per_query(the_run, qrels, names, wide=True) if args.per_query or args.compare else None
    if args.per_query:
        report["per_query"] = {q: {m: float(rows.loc[q, m]) for m in names} for q in rows.index}
    if args.compare:
        other = load_run(args.compare)
        other_rows = per_query(other, qrels, names, wide=True)
        tests = [paired_test(other_rows, rows, m, method=args.test) for m in names]
        report["compare"] = {"baseline": args.compare, "test": args.test, "tests": [t.to_dict() for t in tests]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(args, names, means, rows, report)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _print_text(args, names, means, rows, report) -> None:
    print(f"run {args.run} | qrels {args.qrels} | {report['judged_queries']} judged queries")
    if args.per_query:
        table = [[q] + [_fmt(rows.loc[q, m]) for m in names] for q in rows.index]
        table.append(["all"] + [_fmt(means[m]) for m in names])
        print(tabulate(table, headers=["qid"] + names, disable_numparse=True, colalign=["left"] + ["right"] * len(names)))
        if not args.compare:
            return
        print()
    if args.compare:
        table = [[t["measure"], _fmt(t["mean_b"]), _fmt(t["mean_a"]), f"{t['delta']:+.4f}", _fmt(t["p_value"])]
                 for t in report["compare"]["tests"]]
        headers = ["measure", "run", "baseline", "delta", f"p ({'paired t' if args.test == 't' else 'randomization'})"]
        print(f"baseline {args.compare}")
    else:
        table = [[m, _fmt(means[m])] for m in names]
        headers = ["measure", "value"]
    print(tabulate(table, headers=headers, disable_numparse=True, colalign=["left"] + ["right"] * (len(headers) - 1)))
