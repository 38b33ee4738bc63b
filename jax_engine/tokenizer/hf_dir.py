"""Tokenizers of HF checkpoint directories: tokenizer.json or tokenizer.model, plus tokenizer_config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sentencepiece
import tokenizers

from jax_engine.tokenizer.backends import Backend, HFBackend, SentencePieceBackend, SpecialToken
from jax_engine.tokenizer.tokenizer import SpecialTokens, Tokenizer, TokenizerError


def tokenizer_from_dir(path: Path) -> Tokenizer:
    if not path.is_dir():
        raise TokenizerError(f"{path}: not a directory")
    config_path = path / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    added = _config_added_tokens(config)
    backend: Backend
    if (path / "tokenizer.json").is_file():
        backend = _load_tokenizer_json(path / "tokenizer.json")
    elif (path / "tokenizer.model").is_file():
        backend = _load_sentencepiece_file(path / "tokenizer.model", added)
    else:
        raise TokenizerError(f"{path}: no tokenizer.json or tokenizer.model")
    bos_id = _config_token_id(backend, config.get("bos_token"))
    special = SpecialTokens(
        bos_token_id=bos_id,
        eos_token_id=_config_token_id(backend, config.get("eos_token")),
        unk_token_id=_config_token_id(backend, config.get("unk_token")),
        pad_token_id=_config_token_id(backend, config.get("pad_token")),
        add_bos_token=bool(config.get("add_bos_token", _adds_bos_by_default(backend, bos_id))),
        add_eos_token=bool(config.get("add_eos_token", False)),
        suffix_ids=[] if config.get("add_eos_token") else _appended_by_default(backend),
        chat_template=_chat_template(path, config),
    )
    return Tokenizer(backend, special)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read JSON ({e})") from e


def _load_tokenizer_json(path: Path) -> HFBackend:
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception for bad JSON and unknown components
        raise TokenizerError(f"{path}: cannot load tokenizer ({str(e).splitlines()[0]})") from e
    return HFBackend(tok)


def _load_sentencepiece_file(path: Path, added: list[SpecialToken]) -> SentencePieceBackend:
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.load(str(path))
    except (OSError, RuntimeError) as e:
        raise TokenizerError(f"{path}: cannot load sentencepiece model ({e})") from e
    extra = [t for t in added if t.id >= sp.get_piece_size() or sp.id_to_piece(t.id) != t.content]
    return SentencePieceBackend(sp, extra)


def _adds_bos_by_default(backend: Backend, bos_id: int | None) -> bool:
    """Without add_bos_token in tokenizer_config.json: what tokenizer.json's post-processor does, or
    LlamaTokenizer's default (yes) for a bare tokenizer.model."""
    if bos_id is None:
        return False
    if isinstance(backend, SentencePieceBackend):
        return True
    ids = backend.tok.encode("a", add_special_tokens=True).ids
    return bool(ids) and ids[0] == bos_id


def _appended_by_default(backend: Backend) -> list[int]:
    """Ids tokenizer.json's post-processor appends to every encoding with special tokens, as HF's tokenizer
    applies it (Qwen3-Embedding's ends each input with <|endoftext|>, the token it pools)."""
    if not isinstance(backend, HFBackend):
        return []
    plain = backend.tok.encode("a", add_special_tokens=False).ids
    full = backend.tok.encode("a", add_special_tokens=True).ids
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    return [] if start is None else full[start + len(plain):]


def _config_added_tokens(config: dict) -> list[SpecialToken]:
    decoder = config.get("added_tokens_decoder") or {}
    return [
        SpecialToken(int(i), t["content"], bool(t.get("special", False)))
        for i, t in decoder.items()
        if isinstance(t, dict) and "content" in t
    ]


def _config_token_id(backend: Backend, token: Any) -> int | None:
    """A tokenizer_config.json special token: a string or an AddedToken dict ({"content": ...})."""
    if isinstance(token, dict):
        token = token.get("content")
    if not isinstance(token, str):
        return None
    return backend.token_id(token)


def _chat_template(path: Path, config: dict) -> str | None:
    template = config.get("chat_template")
    if template is None and (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text(encoding="utf-8")
    if template is None and (path / "chat_template.json").is_file():
        template = _read_json(path / "chat_template.json").get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default", next(iter(named.values()), None))
    return template if isinstance(template, str) else None
