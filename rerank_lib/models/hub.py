"""Whether the Hugging Face hub can serve a model here: the offline switches, a bounded probe, the local HF cache.

Why: an offline run must fail at once with the list of built-ins, never hang on a DNS lookup.
"""
from __future__ import annotations

import functools
import os
import threading


def env_offline() -> bool:
    truthy = {"1", "on", "yes", "true"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=None)
def _probe(url: str, timeout: float) -> bool:
    """HEAD request in a daemon thread, joined with a timeout: DNS lookups ignore socket timeouts, a joined thread
    does not hang us. Only a 2xx/3xx answer counts: sandboxes with transparent proxies accept every TCP connect
    and answer 404, and an https endpoint must also pass certificate verification for its host name."""
    import urllib.request

    result: list[bool] = []

    def attempt():
        try:
            request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "rerank-repro"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append(200 <= response.status < 400)
        except Exception:  # URLError, HTTPError (4xx/5xx), SSL errors, timeouts
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set or the hub (or $HF_ENDPOINT) does not answer within
    `timeout` seconds; the network answer is cached for the process, the environment is read every call."""
    if env_offline():
        return False
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return _probe(endpoint + "/", timeout)


def in_hf_cache(repo_id: str, revision: str | None = None) -> bool:
    """Whether a snapshot of `repo_id` is already in the local HF cache (weights or at least a tokenizer)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    for filename in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename, revision=revision,
                                         cache_dir=os.environ.get("HF_HUB_CACHE") or None)
        except Exception:  # malformed ids raise validation errors: not cached
            return False
        if isinstance(hit, str):
            return True
    return False

