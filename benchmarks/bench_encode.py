"""Encoding throughput of our BiEncoder against sentence-transformers on the same model, documents and settings.

Why: BiEncoder re-implements sentence-transformers' encode path (so training and inference share `embed`); this
checks that it is not slower, and what bf16 autocast buys where the CPU has native bf16 (on a CPU without it,
our default stays fp32 and that row is skipped as identical).

    PYTHONPATH=. python benchmarks/bench_encode.py [--n 512] [--batch-size 32] [--threads 2] [--repeats 2] [--force-bf16]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="SciFact documents to encode (corpus order)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per encoder (best is kept)")
    parser.add_argument("--force-bf16", action="store_true", help="also time bf16 autocast where it is emulated")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from rerank_lib.data.beir import load_beir
    from rerank_lib.models import cpu_supports_bf16
    from rerank_lib.paths import data_root
    from rerank_lib.retrievers import BiEncoder

    root = data_root()
    if root is None:
        raise SystemExit("no data root: set RERANK_DATA_DIR or put shared/ beside the project")
    corpus = load_beir(root / "beir" / "scifact", "test").corpus
    texts = [doc.text_for_model for doc in list(corpus.values())[: args.n]]

    ours32 = BiEncoder("minilm-l6", device="cpu", max_length=args.max_length, bf16=False)
    default = BiEncoder("minilm-l6", device="cpu", max_length=args.max_length, bf16="auto")
    st = SentenceTransformer(ours32.resolved.source, device="cpu")
    st.max_seq_length = args.max_length
    n_tokens = sum(len(x) for x in ours32.tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"])
    print(f"{len(texts)} SciFact docs, {n_tokens / len(texts):.0f} tokens/doc (max {args.max_length}), "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, native CPU bf16: {cpu_supports_bf16()}")

    # Warm-up (allocator, oneDNN kernels) on a few docs, untimed.
    ours32.encode(texts[:8], batch_size=args.batch_size, show_progress=False)
    st.encode(texts[:8], batch_size=args.batch_size)

    candidates = [
        ("sentence-transformers fp32", lambda: st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)),
        ("BiEncoder fp32", lambda: ours32.encode(texts, batch_size=args.batch_size, show_progress=False)),
    ]
    if default.compute_dtype != torch.float32:
        candidates.append((f"BiEncoder default ({default.compute_dtype})", default))
    else:
        print("BiEncoder default (bf16='auto') is fp32 on this CPU: same as the fp32 row, not timed twice")
    if args.force_bf16 and default.compute_dtype == torch.float32:
        candidates.append(("BiEncoder bf16 forced (emulated)",
                           BiEncoder("minilm-l6", device="cpu", max_length=args.max_length, bf16=True)))
    for i, (label, enc) in enumerate(candidates):
        if isinstance(enc, BiEncoder):
            enc.model = ours32.model  # same weights object; only the autocast dtype differs
            enc.encode(texts[:8], batch_size=args.batch_size, show_progress=False)
            candidates[i] = (label, lambda enc=enc: enc.encode(texts, batch_size=args.batch_size, show_progress=False))

    # Alternate the order between repeats and keep each encoder's best time: the machine is shared, and whoever
    # runs first or during someone else's burst should not decide the ratio.
    best: dict[str, float] = {}
    embeddings: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        for label, fn in (candidates if r % 2 == 0 else candidates[::-1]):
            emb, t = _timed(fn)
            best[label] = min(best.get(label, float("inf")), t)
            embeddings[label] = emb
    ref = embeddings[candidates[0][0]]
    rows = [(label, best[label], float(np.min(np.sum(embeddings[label] * ref, axis=1)))) for label, _ in candidates]

    base = len(texts) / rows[0][1]
    print(f"best of {args.repeats} passes each, order alternated")
    print(f"{'encoder':<38} {'docs/s':>8} {'vs ST fp32':>10} {'min cos vs ST':>14}")
    for label, seconds, cos in rows:
        rate = len(texts) / seconds
        print(f"{label:<38} {rate:8.1f} {rate / base:9.2f}x {cos:14.6f}")


if __name__ == "__main__":
    main()
