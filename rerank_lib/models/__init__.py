"""Models: names (the one name -> model resolver: local folders, stand-ins, built-ins, hub ids), builtin (the offline
built-ins), standin (paper-tiny's tiny models), folders (complete folders, sentence-transformers settings), device
(device, dtype, precision) and loading. Notebooks name models as papers do (hub ids); offline only a few weights
exist, so every loader goes through `resolve`, which finds the local copy or fails at once naming what is here."""
from .builtin import BUILTINS, ModelUnavailableError, models_dir
from .device import (PRECISION_ENV, PRECISIONS, attn_implementation, autocast_context, compute_dtype,
                     cpu_supports_bf16, pick_device, pick_dtype, precision_name, precision_scope, precision_setting)
from .folders import (FOLDER_KINDS, EncoderSettings, IncompleteModelFolder, check_folder, cross_encoder_max_length,
                      folder_gaps, fresh_keys, sentence_transformers_settings)
from .loading import (TINY_RANDOM_LLAMA, dequantised_copy, dequantised_folder, load_causal_lm, load_chat_lm,
                      load_chat_tokenizer, load_model, load_tokenizer, tiny_random_llama, trusted_folder, where_from)
from .names import ResolvedModel, gguf_quantization, hub_id, hub_reachable, resolve, weights_params

__all__ = [name for name in dir() if not name.startswith("_")]  # every name above, and the modules
