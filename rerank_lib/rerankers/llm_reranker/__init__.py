"""LLM-decoder rerankers: RAG-Retrieval's score head and bge-reranker-v2-gemma's "Yes" logit, plus the LLM teacher.

Two published ways to turn a decoder-only LM into a pointwise reranker, one class (`DecoderReranker`):

* head="score" — RAG-Retrieval `LLMDecoder` (rag_retrieval/train/reranker/model_llm.py): the input is
  `query_format(q) + seq + document_format(d) + special_token` (defaults "query: {}", "\\n", "document: {}",
  "</s>"); only the DOCUMENT is cut to fit `max_length`; a fresh linear head (hidden -> 1, no bias, as
  AutoModelForSequenceClassification's `score`) reads the hidden state of the last non-pad token. RAG-Retrieval
  fine-tunes every weight with point_ce / point_mse.
* head="yes" — FlagEmbedding's base LLM reranker (bge-reranker-v2-gemma; FlagEmbedding/inference/reranker/
  decoder_only/base.py and finetune/reranker/decoder_only): `[bos] "A: " + q  "\\n"  "B: " + d  "\\n" + PROMPT`,
  PROMPT = "Given a query A and a passage B, determine whether the passage contains an answer to the query by
  providing a prediction of either 'Yes' or 'No'."; the score is the logit of the first token of "Yes" at the
  last position; trained with LoRA (peft) and FlagEmbedding's group softmax CE.
* prompt="chat" with head="yes" — the distillation teacher of RAG-Retrieval's examples/distill_llm_to_bert_reranker
  (model_llm_generate.py): the question in the model's chat template with the generation prompt, and the
  probability of "Yes" at the FIRST generated step, from ONE forward pass (`yes_probability`), not generate().

What we never do: project every position onto the whole vocabulary. The backbone's last hidden states are
indexed at the scored position first (`last_token_index`, from the attention mask, so left and right padding give
the same answer; position ids are rebuilt from the mask for the same reason), and only that vector is projected:
onto one score row, onto the two rows of "Yes"/"No", or (teacher with normalize="vocab", one position only) onto
the vocabulary.

The class offers what `training.groups` trains (`model`, `encode_pairs`, `collate`, `batch_logits`, `load_weights`)
and what evaluation calls (`score`, `rerank`), so the LLM rerankers are trained with the same losses and the same
loop as the BERT cross-encoder. The code lives in submodules (settings, indexing, inputs, scorer, ranker, features,
head_only); to monkeypatch a name, patch it in the submodule that looks it up.
"""
from .settings import (CHAT_TEACHER_PROMPT, CONFIG_FILE, FLAG_PROMPT, HEADS, PROMPTS, WEIGHTS_FILE, LoraSettings,
                       PromptFormat)
from .indexing import last_token_index, position_ids_from_mask
from .inputs import build_input_ids
from .scorer import DecoderScorer
from .ranker import DecoderReranker, ReadyDecoder
from .head_only import HeadOnlyRanker

__all__ = [
    "FLAG_PROMPT", "CHAT_TEACHER_PROMPT", "HEADS", "PROMPTS", "LoraSettings", "PromptFormat", "DecoderReranker", "ReadyDecoder",
    "DecoderScorer", "HeadOnlyRanker", "last_token_index", "position_ids_from_mask", "build_input_ids", "CONFIG_FILE",
    "WEIGHTS_FILE",
]
