"""Tokenizers from GGUF metadata (tokenizer.ggml.*).

"gpt2" vocabularies become a byte-level BPE in HF `tokenizers` with llama.cpp's pre-tokenizer split for
`tokenizer.ggml.pre`; "llama" vocabularies become a sentencepiece BPE ModelProto, which is the algorithm
llama.cpp's SPM tokenizer mirrors. The file is read by the loader's GGUF reader, as the weights' is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sentencepiece
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers

from jax_engine.loader.errors import LoadError
from jax_engine.loader.gguf_file import read_gguf_header
from jax_engine.tokenizer.backends import Backend, HFBackend, SentencePieceBackend
from jax_engine.tokenizer.sentencepiece_proto import CONTROL, NORMAL, UNKNOWN, USER_DEFINED, sentencepiece_model_proto
from jax_engine.tokenizer.tokenizer import SpecialTokens, Tokenizer, TokenizerError


def read_gguf_tokenizer_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The `tokenizer.*` key/values of a GGUF file."""
    try:
        metadata = read_gguf_header(path).metadata
    except LoadError as e:
        raise TokenizerError(str(e)) from None
    return {key: value for key, value in metadata.items() if key.startswith("tokenizer.")}


def tokenizer_from_gguf_metadata(metadata: Mapping[str, Any], source: str) -> Tokenizer:
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if model is None or tokens is None:
        raise TokenizerError(f"{source}: GGUF has no tokenizer.ggml.model / tokenizer.ggml.tokens")
    token_types = metadata.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    backend: Backend
    if model == "gpt2":
        backend = _gguf_byte_level_bpe(metadata, tokens, token_types, source)
        default_add_bos = _gguf_pre_tokenizer(metadata, source).add_bos
    elif model == "llama":
        backend = _gguf_sentencepiece(metadata, tokens, token_types, source)
        default_add_bos = True
    else:
        raise TokenizerError(f"{source}: unsupported GGUF tokenizer model {model!r} (supported: gpt2, llama)")

    def token_id(key: str) -> int | None:
        value = metadata.get(f"tokenizer.ggml.{key}")
        return int(value) if value is not None and 0 <= int(value) < len(tokens) else None

    eos_id = token_id("eos_token_id")
    special = SpecialTokens(
        bos_token_id=token_id("bos_token_id"),
        eos_token_id=eos_id,
        extra_eos_ids=_gguf_end_of_generation_ids(metadata, tokens, token_types, token_id),
        unk_token_id=token_id("unknown_token_id"),
        pad_token_id=token_id("padding_token_id"),
        add_bos_token=bool(metadata.get("tokenizer.ggml.add_bos_token", default_add_bos)),
        add_eos_token=bool(metadata.get("tokenizer.ggml.add_eos_token", False)),
        chat_template=metadata.get("tokenizer.chat_template"),
    )
    return Tokenizer(backend, special)


# Control tokens that end a turn in common chat formats; llama.cpp treats these as end-of-generation too.
_END_OF_GENERATION_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", "<|return|>", "<|call|>",
})


def _gguf_end_of_generation_ids(metadata, tokens, token_types, token_id) -> list[int]:
    ids = [token_id("eot_token_id"), token_id("eom_token_id")]
    ids += [i for i, t in enumerate(tokens) if token_types[i] == CONTROL and t in _END_OF_GENERATION_TEXTS]
    return [i for i in ids if i is not None]


# -- gpt2: byte-level BPE with llama.cpp's pre-tokenizer table ---------------------------------

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CONTRACTIONS_I = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + _CONTRACTIONS_I
    + r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS_I
    + r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class _PreTokenizer:
    splits: tuple[str, ...]  # applied in turn, each splitting the pieces of the previous one
    ignore_merges: bool = False
    nfc: bool = False  # HF's Qwen2 tokenizer.json normalizes to NFC before splitting
    add_bos: bool = False  # llama.cpp's default when tokenizer.ggml.add_bos_token is absent


_DEFAULT = _PreTokenizer((r"[\p{P}\$\+<=>\^~\|]+", _GPT2_SPLIT, r"\p{N}+", r"[0-9][0-9][0-9]"))
_LLAMA3 = _PreTokenizer((_LLAMA3_SPLIT,), ignore_merges=True, add_bos=True)
_QWEN2 = _PreTokenizer((_QWEN2_SPLIT,), nfc=True)
_DIGITS_THEN_GPT2 = _PreTokenizer((r"\p{N}", _GPT2_SPLIT))
_GPT2 = _PreTokenizer((_GPT2_SPLIT,))

_PRE_TOKENIZERS: dict[str, _PreTokenizer] = {
    "default": _DEFAULT,
    **dict.fromkeys(
        ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"], _LLAMA3
    ),
    **dict.fromkeys(["dbrx", "smaug-bpe"], _PreTokenizer((_LLAMA3_SPLIT,))),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen", "megrez"], _QWEN2),
    **dict.fromkeys(["stablelm2", "hunyuan"], _PreTokenizer((_QWEN2_SPLIT,))),
    **dict.fromkeys(
        ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"], _DIGITS_THEN_GPT2
    ),
    **dict.fromkeys(
        ["gpt-2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "gigachat", "a.x-4.0", "mellum",
         "modern-bert", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4"],
        _GPT2,
    ),
    "falcon": _PreTokenizer((r"[\p{P}\$\+<=>\^~\|`]+", _GPT2_SPLIT, r"[0-9][0-9][0-9]")),
    "deepseek-coder": _PreTokenizer(
        (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}")
    ),
    **dict.fromkeys(["bloom", "poro-chat", "gpt3-finnish"], _PreTokenizer((r" ?[^(\s|.,!?…。，、।۔،)]+",))),
    "tekken": _PreTokenizer((_TEKKEN_SPLIT,), ignore_merges=True, add_bos=True),
    **dict.fromkeys(["gpt-4o", "llama4"], _PreTokenizer((_GPT4O_SPLIT,))),
}


def _gguf_pre_tokenizer(metadata: Mapping[str, Any], source: str) -> _PreTokenizer:
    name = metadata.get("tokenizer.ggml.pre") or "default"
    if name not in _PRE_TOKENIZERS:
        raise TokenizerError(f"{source}: unsupported GGUF pre-tokenizer {name!r}")
    return _PRE_TOKENIZERS[name]


def _gguf_byte_level_bpe(metadata, tokens: list[str], token_types: list[int], source: str) -> HFBackend:
    merges = metadata.get("tokenizer.ggml.merges")
    if merges is None:
        raise TokenizerError(f"{source}: gpt2 GGUF tokenizer has no tokenizer.ggml.merges")
    pre = _gguf_pre_tokenizer(metadata, source)
    vocab = {token: i for i, token in reversed(list(enumerate(tokens)))}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = tokenizers.Tokenizer(models.BPE(vocab, pairs, ignore_merges=pre.ignore_merges))
    if pre.nfc:
        tok.normalizer = normalizers.NFC()
    splits = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in pre.splits]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    control = [t for i, t in enumerate(tokens) if token_types[i] == CONTROL]
    user_defined = [t for i, t in enumerate(tokens) if token_types[i] == USER_DEFINED]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])
    return HFBackend(tok)


# -- llama: sentencepiece BPE, rebuilt as a ModelProto ------------------------------------------


def _gguf_sentencepiece(
    metadata, tokens: list[str], token_types: list[int], source: str
) -> SentencePieceBackend:
    scores = metadata.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    if token_types.count(UNKNOWN) != 1:
        raise TokenizerError(f"{source}: llama GGUF tokenizer needs exactly one unknown token")
    proto = sentencepiece_model_proto(
        tokens,
        scores,
        token_types,
        add_dummy_prefix=bool(metadata.get("tokenizer.ggml.add_space_prefix", True)),
        remove_extra_whitespaces=bool(metadata.get("tokenizer.ggml.remove_extra_whitespaces", False)),
    )
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.load_from_serialized_proto(proto)
    except RuntimeError as e:
        raise TokenizerError(f"{source}: llama GGUF vocabulary rejected by sentencepiece ({e})") from e
    return SentencePieceBackend(sp)
