"""Parsing, repair and error counts of listwise answers (rank_llm's receive_permutation / response_analysis),
on the 43 real RankVicuna responses and on malformed strings; the sliding window's spans."""
import json
import re

import pytest

from rerank_lib.listwise.parsing import (
    classify_response,
    clean_ranking_response,
    count_errors,
    parse_permutation,
    passages_in_prompt,
)
from rerank_lib.listwise.prompts import RANK_ZEPHYR, RANK_ZEPHYR_ALPHA, format_ranking
from rerank_lib.listwise.window import sliding_window, window_spans

SAMPLES = "rank_llm/listwise_samples/rankvicuna_bm25_dl19_window20_prompts_responses.jsonl"


@pytest.fixture(scope="module")
def rankvicuna(shared_data):
    with open(shared_data / SAMPLES, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_rankvicuna_responses_parse_into_their_own_permutations(rankvicuna):
    assert len(rankvicuna) == 43
    for row in rankvicuna:
        n = passages_in_prompt(row["prompt"])
        assert n == 20
        order = parse_permutation(row["response"], n)
        # every response is a complete permutation: the parsed order is exactly the ids as written, minus one
        assert order == [int(x) - 1 for x in re.findall(r"\[(\d+)\]", row["response"])]
        assert format_ranking(order, alpha=False) == row["response"].strip()
    stats = count_errors([r["response"] for r in rankvicuna], [passages_in_prompt(r["prompt"]) for r in rankvicuna])
    assert stats == {"ok": 43, "wrong_format": 0, "repetition": 0, "missing_documents": 0}


def test_rankvicuna_responses_damaged_are_counted_by_kind(rankvicuna):
    good = rankvicuna[0]["response"]  # '[2] > [3] > [4] > ... > [17]'
    truncated = good.rsplit(" > ", 1)[0]  # one id short
    repeated = good + " > [2]"  # 21 ids, one twice
    chatty = "Sure! Here is the ranking: " + good
    stats = count_errors([good, truncated, repeated, chatty, None], 20)
    assert stats == {"ok": 1, "wrong_format": 2, "repetition": 1, "missing_documents": 1}
    assert count_errors([good, truncated], 20, normalize=True) == {
        "ok": 50.0, "wrong_format": 0.0, "repetition": 0.0, "missing_documents": 50.0}
    # repair: the truncated answer's missing id goes last, the repeated id counts once, the chat text is ignored
    assert parse_permutation(truncated, 20)[-1] == 16
    assert parse_permutation(repeated, 20) == parse_permutation(good, 20)
    assert parse_permutation(chatty, 20) == parse_permutation(good, 20)


@pytest.mark.parametrize("response, n, expected", [
    ("[3] > [1] > [2]", 3, [2, 0, 1]),
    ("[2] > [2] > [1]", 3, [1, 0, 2]),  # repetition: first occurrence kept, missing [3] appended
    ("[7] > [2]", 3, [1, 0, 2]),  # out of range dropped, the rest in original order
    ("", 4, [0, 1, 2, 3]),  # nothing usable: original order
    ("I cannot rank these.", 2, [0, 1]),
    ("<think>[1] first? no, [2]</think>[2] > [1]", 2, [1, 0]),  # only what follows </think>
    ("[³] > [¹] > [②]", 3, [2, 0, 1]),  # digit look-alikes normalised
    ("[１０] > [1]", 10, [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]),  # full-width digits
    ("[0] > [2]", 2, [1, 0]),  # 0 is out of range (ids are 1-based)
    ("[12] > [1]", 20, [11, 0] + [i for i in range(20) if i not in (11, 0)]),
])
def test_parse_permutation_repairs_like_rank_llm(response, n, expected):
    assert parse_permutation(response, n) == expected


@pytest.mark.parametrize("response, n, expected", [
    ("[C] > [A] > [B]", 3, [2, 0, 1]),
    ("[B] > [B]", 3, [1, 0, 2]),
    ("[B]>[A]", 2, [1, 0]),  # rank_llm's FIRST string has no spaces
    ("[Z] > [A]", 3, [0, 1, 2]),  # Z is passage 26: out of range
    ("[b] > [A]", 2, [0, 1]),  # lower case letters map far out of range and are dropped (as in rank_llm)
])
def test_parse_permutation_letters(response, n, expected):
    assert parse_permutation(response, n, alpha=True) == expected


def test_clean_ranking_response():
    assert clean_ranking_response("[3] > [1] > [2]") == "3     1     2"  # each of "] > [" becomes a space
    assert clean_ranking_response("[3] > [1] > [2]").split() == ["3", "1", "2"]
    assert clean_ranking_response("[C] > [A]", alpha=True).split() == ["3", "1"]
    assert clean_ranking_response("reasoning [9]</think> [1]") == "1"


@pytest.mark.parametrize("response, n, alpha, category", [
    ("[2] > [1] > [3]", 3, False, "ok"),
    (" [2] > [1] > [3]\n", 3, False, "ok"),
    ("[2] > [1]", 3, False, "missing_documents"),
    ("[2] > [1] > [2]", 3, False, "repetition"),
    ("[2] > [1] > [3] > [3]", 3, False, "repetition"),
    ("[2] > [1] > [4]", 3, False, "missing_documents"),  # 3 ids, all distinct, but [3] absent
    ("[2], [1], [3]", 3, False, "wrong_format"),
    ("[2] > [1] > [3] and that is all", 3, False, "wrong_format"),
    ("<think>hmm</think>[2] > [1] > [3]", 3, False, "ok"),
    ("[B] > [A] > [C]", 3, True, "ok"),
    ("[B] > [A] > [D]", 3, True, "missing_documents"),
    ("[B] > [A]", 3, True, "missing_documents"),
    ("[2] > [1] > [3]", 3, True, "wrong_format"),
])
def test_classify_response(response, n, alpha, category):
    template = RANK_ZEPHYR_ALPHA if alpha else RANK_ZEPHYR
    assert classify_response(response, n, template) == category


def test_count_errors_needs_one_count_per_response():
    with pytest.raises(ValueError, match="2 responses but 1"):
        count_errors(["[1]", "[1]"], [1])


def test_passages_in_prompt():
    prompt = [{"role": "system", "content": "[9] is not counted"},
              {"role": "user", "content": "[1] a\n[2] b\n[3] c\ne.g., [2] > [1]"}]
    assert passages_in_prompt(prompt) == 3
    assert passages_in_prompt("[A] x\n[B] y e.g., [B] > [A]", alpha=True) == 2
    with pytest.raises(ValueError, match="no passage identifiers"):
        passages_in_prompt("no ids here")


@pytest.mark.parametrize("n, window, stride, spans", [
    (100, 20, 10, [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30), (0, 20)]),
    (20, 10, 5, [(10, 20), (5, 15), (0, 10)]),
    (20, 20, 10, [(0, 20)]),
    (5, 10, 5, [(0, 5)]),  # fewer candidates than the window: one short window
    (23, 10, 5, [(13, 23), (8, 18), (3, 13), (0, 8)]),  # the last window is cut at the top
    (0, 10, 5, []),
])
def test_window_spans_back_to_front(n, window, stride, spans):
    assert window_spans(n, window, stride) == spans


def test_window_spans_respects_rank_end():
    assert window_spans(100, 10, 5, rank_end=20) == [(10, 20), (5, 15), (0, 10)]
    with pytest.raises(ValueError):
        window_spans(10, 0, 5)


def test_sliding_window_bubbles_the_best_item_to_the_top():
    items = list(range(20))  # item 19 (last) is the best; a perfect ranker sorts each window descending

    def best_first(chunk, start):
        return sorted(range(len(chunk)), key=lambda i: -chunk[i])

    out = sliding_window(items, best_first, window=10, stride=5)
    assert out[0] == 19 and out[:3] == [19, 18, 17]
    assert sorted(out) == items
    with pytest.raises(ValueError, match="not a permutation"):
        sliding_window(items, lambda chunk, start: [0] * len(chunk), window=10, stride=5)
