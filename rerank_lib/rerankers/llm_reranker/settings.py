"""What a DecoderReranker is built from and saved with: the published prompts, LoRA settings, file names."""
from __future__ import annotations

from dataclasses import dataclass

FLAG_PROMPT = ("Given a query A and a passage B, determine whether the passage contains an answer to the query by "
               "providing a prediction of either 'Yes' or 'No'.")
# RAG-Retrieval's distillation prompt (model_llm_generate.py) is Chinese and asks for 是/否; this is its English
# rendering, with the passage last so that truncation cuts the passage only.
CHAT_TEACHER_PROMPT = ("Given a query A and a passage B, judge from the passage whether it contains the answer to "
                       "the query, and give your prediction: \"Yes\" or \"No\".\nQuery A: {query}\nPassage B: {passage}")
HEADS = ("score", "yes")
PROMPTS = ("rag-retrieval", "flagembedding", "chat")
CONFIG_FILE = "decoder_reranker.json"
WEIGHTS_FILE = "trainable.safetensors"
PASSAGE_MARK = "\u2063PASSAGE\u2063"  # an invisible separator nobody writes: where the chat template's passage goes


@dataclass(frozen=True)
class PromptFormat:
    """How a (query, document) pair becomes one token sequence. `kind` picks the published layout:

    rag-retrieval: query_format.format(q) + seq + document_format.format(d) + special_token   (RAG-Retrieval)
    flagembedding: [bos] query_instruction + q + sep + passage_instruction + d + sep + prompt (FlagEmbedding)
    chat:          the tokenizer's chat template around `chat_prompt` (with {query}, {passage}), generation prompt on
    """

    kind: str = "rag-retrieval"
    query_format: str = "query: {}"
    document_format: str = "document: {}"
    seq: str = "\n"
    special_token: str = "</s>"
    query_instruction: str = "A: "
    passage_instruction: str = "B: "
    sep: str = "\n"
    prompt: str = FLAG_PROMPT
    chat_prompt: str = CHAT_TEACHER_PROMPT
    max_query_fraction: float = 0.5  # the query (with its wrapper) keeps at most this share of max_length

    def __post_init__(self):
        if self.kind not in PROMPTS:
            raise ValueError(f"prompt kind must be one of {PROMPTS}, got {self.kind!r}")
        if self.kind == "chat" and ("{query}" not in self.chat_prompt or "{passage}" not in self.chat_prompt):
            raise ValueError("chat_prompt needs the fields {query} and {passage}")
        if not 0 < self.max_query_fraction < 1:
            raise ValueError("max_query_fraction must be in (0, 1)")


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA on the backbone (FlagEmbedding's gemma example: r 32, alpha 64, q/k/v/o projections, lr 2e-4)."""

    r: int = 32
    alpha: float = 64
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
