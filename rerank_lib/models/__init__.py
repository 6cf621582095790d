"""Models: one name -> model resolver, loading, device and dtype choice, folder checks, and the paper-tiny stand-ins.

Why one package: notebooks name models the way papers do (hub ids), but offline only a few weights exist (pip
packages and ../shared/models). Every loader goes through `resolve` (names.py), so an offline run either finds the
local copy or fails at once with a message listing what *is* available, instead of hanging on the network.
Modules: builtin (offline built-ins), hub (can the hub serve it), standin (paper-tiny's tiny models), names (the
resolver), folders (complete folders, sentence-transformers settings), device (device, dtype, precision), loading.
"""
from .builtin import BUILTINS, ModelUnavailableError, models_dir
from .device import (PRECISION_ENV, PRECISIONS, attn_implementation, autocast_context, compute_dtype,
                     cpu_supports_bf16, pick_device, pick_dtype, precision_name, precision_scope, precision_setting)
from .folders import (FOLDER_KINDS, EncoderSettings, IncompleteModelFolder, check_folder, cross_encoder_max_length,
                      folder_gaps, fresh_keys, sentence_transformers_settings)
from .hub import hub_reachable
from .loading import (TINY_RANDOM_LLAMA, dequantised_copy, dequantised_folder, load_causal_lm, load_chat_lm,
                      load_chat_tokenizer, load_model, load_tokenizer, tiny_random_llama, trusted_folder, where_from)
from .names import ResolvedModel, gguf_quantization, hub_id, resolve, weights_params

__all__ = [
    "BUILTINS", "ModelUnavailableError", "ResolvedModel", "resolve", "load_tokenizer", "load_model", "load_causal_lm",
    "dequantised_folder", "dequantised_copy", "gguf_quantization", "pick_device", "pick_dtype", "cpu_supports_bf16",
    "attn_implementation", "autocast_context", "hub_reachable", "IncompleteModelFolder", "FOLDER_KINDS",
    "folder_gaps", "check_folder", "EncoderSettings", "sentence_transformers_settings", "cross_encoder_max_length",
    "PRECISIONS", "PRECISION_ENV", "precision_setting", "precision_scope", "compute_dtype", "precision_name",
    "fresh_keys", "hub_id", "models_dir", "weights_params", "TINY_RANDOM_LLAMA", "tiny_random_llama",
    "load_chat_tokenizer", "load_chat_lm", "where_from", "trusted_folder",
]
