"""Listwise training objectives (their loss formulas by hand: test_losses.py): rank_llm's constants; answer-only
logits against full logits; the FIRST position; NEFTune; tokenised conversations; a two-step training run through
the shared loop."""
import math

import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.listwise import (
    ConversationSampling,
    ListwiseLM,
    ListwiseObjective,
    build_conversations,
    default_ranking_weight,
    enable_neftune,
    encode_conversation,
    identifier_token_ids,
    read_conversations,
)
from rerank_lib.data.jsonl import write_jsonl
from rerank_lib.losses import ranknet_loss
from rerank_lib.listwise.objectives import answer_positions, first_position_mask, full_logits_generation_loss
from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE
from rerank_lib.training import pad_collate


def test_rank_llm_lambda_constants():
    assert default_ranking_weight("ranknet", weighted=True) == 10.0
    assert default_ranking_weight("listnet", weighted=False) == 0.1
    assert default_ranking_weight("lambdarank", weighted=False) == 1.0
    assert default_ranking_weight("ranknet", weighted=False) == 1.0


def test_answer_positions_shift_by_one():
    labels = torch.tensor([[-100, -100, 7, 8, -100]])
    select, targets = answer_positions(labels)
    assert select.tolist() == [[False, True, True, False, False]] and targets.tolist() == [7, 8]
    assert first_position_mask(torch.tensor([2]), (1, 5)).tolist() == [[False, False, True, False, False]]


# --- with a tiny model and the real Mistral tokenizer ----------------------------------------------------------

@pytest.fixture(scope="module")
def tok():
    from rerank_lib.models import load_tokenizer

    t = load_tokenizer("mistral-v0.1-tokenizer")
    t.chat_template = ZEPHYR_STYLE_TEMPLATE
    t.pad_token = t.unk_token
    return t


def tiny_llama(tok, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024))


@pytest.fixture(scope="module")
def conversations():
    docs = {str(i): Document(str(i), f"passage {i} about topic {i % 2}") for i in range(5)}
    first_stage = {"q1": {str(i): 5.0 - i for i in range(5)}, "q2": {str(i): float(i) for i in range(5)}}
    teacher = {"q1": {"3": 4.0, "1": 3.0, "0": 2.0, "4": 1.0, "2": 0.0}, "q2": {str(i): float(i) for i in range(5)}}
    return build_conversations({"q1": "topic one?", "q2": "topic zero?"}, first_stage, teacher, docs,
                               ConversationSampling(window=4, max_words=10, alpha=True, n_variable=2, seed=3))


def test_conversations_are_sharegpt_with_teacher_order(conversations, tmp_path):
    assert len(conversations) == 2 * 3  # per query: the full window + 2 variable-length subsets
    full = conversations[0]
    assert [t["from"] for t in full["conversations"]] == ["system", "human", "gpt"]
    assert full["docids"] == ["0", "1", "2", "3"]  # BM25 top-4 in BM25 order
    assert full["conversations"][2]["value"] == "[D] > [B] > [A] > [C]"  # teacher: 3 > 1 > 0 > 2
    for row in conversations:
        assert 2 <= row["num_passages"] <= 4 and f"I will provide you with {row['num_passages']} passages" in \
            row["conversations"][1]["value"]
    assert build_conversations({"q1": "topic one?"}, {"q1": {"0": 1.0, "1": 0.5}}, {"q1": {"1": 1.0}},
                               {"0": Document("0", "a"), "1": Document("1", "b")},
                               ConversationSampling(window=4, n_variable=0, alpha=False))[0]["conversations"][2]["value"] == "[2] > [1]"  # unscored doc last
    path = write_jsonl(tmp_path / "train.jsonl", conversations)
    assert read_conversations(path) == conversations


def test_read_conversations_errors(tmp_path):
    from rerank_lib.data import DataFormatError

    path = tmp_path / "bad.jsonl"
    path.write_text('{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "u"}]}\n')
    with pytest.raises(DataFormatError, match="line 1, field 'conversations'"):
        read_conversations(path)
    path.write_text('{"conversations": [{"value": "s"}, {"value": 3}, {"value": "a"}]}\n')
    with pytest.raises(DataFormatError, match=r"conversations\[1\].value"):
        read_conversations(path)


def test_encode_conversation(conversations, tok):
    row = conversations[0]
    ex = encode_conversation(row, tok, "combined")
    tokens = tok.convert_ids_to_tokens(ex["input_ids"][ex["first_pos"]:])
    assert tokens[:3] == ["[", "D", "]"] and tokens[-1] == "</s>"
    assert all(label == -100 for label in ex["labels"][: ex["first_pos"]])
    assert ex["labels"][ex["first_pos"]:] == ex["input_ids"][ex["first_pos"]:]
    assert ex["ranks"] == [2, 1, 3, 0] and ex["n_passages"] == 4  # D first, B second, A third, C last
    ranking_only = encode_conversation(row, tok, "ranking")
    assert ranking_only["input_ids"] == ex["input_ids"][: ex["first_pos"] + 1]  # the prompt and its '['
    with pytest.raises(ValueError, match="max_length"):
        encode_conversation(row, tok, "generation", max_length=20)


@pytest.fixture(scope="module")
def batch(conversations, tok):
    return pad_collate(tok, padding_side="right")([encode_conversation(c, tok, "combined") for c in conversations[:3]])


def test_answer_only_logits_equal_full_logits(tok, batch):
    model = tiny_llama(tok)
    objective = ListwiseObjective("generation")
    answer_only = objective(ListwiseLM(model), batch)
    full = full_logits_generation_loss(model, batch)
    assert answer_only.item() == pytest.approx(full.item(), rel=1e-5)
    g1 = torch.autograd.grad(answer_only, model.model.layers[0].mlp.up_proj.weight)[0]
    g2 = torch.autograd.grad(full_logits_generation_loss(model, batch), model.model.layers[0].mlp.up_proj.weight)[0]
    assert torch.allclose(g1, g2, atol=1e-6)


def test_combined_reads_the_first_answer_position(tok, batch):
    model = tiny_llama(tok)
    ids = identifier_token_ids(tok, 4, alpha=True)
    objective = ListwiseObjective("combined", ids, ranking="ranknet", weighted=True)
    parts = objective.parts(ListwiseLM(model), batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected_rank, at_zero = [], []
    for b in range(3):
        n = int(batch["n_passages"][b])
        ranks = batch["ranks"][b, :n]
        at_answer = logits[b, int(batch["first_pos"][b]), ids[:n]]
        expected_rank.append(ranknet_loss(at_answer, ranks, weighted=True).item())
        at_zero.append(ranknet_loss(logits[b, 0, ids[:n]], ranks, weighted=True).item())  # rank_llm's ranking path
    rank = sum(expected_rank) / 3
    assert parts["ranking"].item() == pytest.approx(rank, rel=1e-5)
    assert parts["ranking"].item() != pytest.approx(sum(at_zero) / 3, rel=1e-3)
    assert parts["loss"].item() == pytest.approx(parts["generation"].item() + 10.0 * rank, rel=1e-5)
    ranking_only = ListwiseObjective("ranking", ids).parts(ListwiseLM(model), batch)
    assert ranking_only["loss"].item() == pytest.approx(rank, rel=1e-5)


def test_objective_refuses_left_padding_and_missing_ids(tok, conversations):
    left = pad_collate(tok, padding_side="left")([encode_conversation(c, tok, "generation") for c in conversations[:3]])
    with pytest.raises(ValueError, match="padded on the right"):
        ListwiseObjective("generation")(ListwiseLM(tiny_llama(tok)), left)
    with pytest.raises(ValueError, match="identifier_ids"):
        ListwiseObjective("combined")


def test_neftune_noise_only_in_training(tok):
    model = tiny_llama(tok)
    lm = ListwiseLM(model)
    ids = torch.tensor([[1, 2, 3, 4]])
    clean = model.get_input_embeddings()(ids).detach()
    handle = enable_neftune(lm, 5.0)
    model.train()
    noisy = model.get_input_embeddings()(ids).detach()
    bound = 5.0 / math.sqrt(4 * 16)  # alpha / sqrt(seq_len * dim)
    assert 0 < (noisy - clean).abs().max().item() <= bound + 1e-6
    model.eval()
    assert torch.equal(model.get_input_embeddings()(ids), clean)
    handle.remove()
    assert enable_neftune(lm, None) is None


def test_listwise_lm_saves_a_loadable_model(tok, tmp_path):
    from transformers import AutoModelForCausalLM

    lm = ListwiseLM(tiny_llama(tok))
    assert len(lm.state_dict()) == len(lm.lm.state_dict())  # body and head are not registered twice
    lm.save_pretrained(tmp_path / "m", state_dict=lm.state_dict())
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert torch.equal(back.model.layers[1].mlp.down_proj.weight, lm.lm.model.layers[1].mlp.down_proj.weight)


def test_two_training_steps_through_the_shared_loop(tok, conversations, tmp_path):
    from rerank_lib.training import TrainConfig, train

    model = tiny_llama(tok)
    lm = ListwiseLM(model)
    ids = identifier_token_ids(tok, 4, alpha=True)
    examples = [encode_conversation(c, tok, "combined") for c in conversations]
    before = model.model.layers[1].mlp.down_proj.weight.detach().clone()
    enable_neftune(lm, 5.0)
    result = train(lm, examples, pad_collate(tok, padding_side="right"), ListwiseObjective("combined", ids),
                   TrainConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_batch_size=2,
                               learning_rate=1e-3, mixed_precision="no", save_every_steps=None, log_every_steps=1))
    assert result.global_step == 2 and len(result.history) == 2
    assert not torch.equal(before, model.model.layers[1].mlp.down_proj.weight)
    assert (result.final_dir / "config.json").exists()
