"""One tokenizer interface over HF `tokenizers` and `sentencepiece`.

Built from an HF checkpoint directory (tokenizer.json or tokenizer.model, plus tokenizer_config.json)
or from GGUF metadata (tokenizer.ggml.*): "gpt2" vocabularies become a byte-level BPE in HF
`tokenizers` with llama.cpp's pre-tokenizer split for `tokenizer.ggml.pre`; "llama" vocabularies
become a sentencepiece BPE ModelProto, which is the algorithm llama.cpp's SPM tokenizer mirrors.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers


class TokenizerError(Exception):
    """A tokenizer could not be built: missing file, corrupt file or unsupported model type."""


# GGUF token types (the same numbering as sentencepiece's ModelProto.SentencePiece.Type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_METASPACE = "\u2581"


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's reversible map from printable stand-in characters back to raw bytes."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    char_of = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in char_of:
            char_of[b] = chr(256 + shift)
            shift += 1
    return {c: b for b, c in char_of.items()}


_BYTE_OF_CHAR = _byte_level_alphabet()


@dataclass(frozen=True)
class SpecialToken:
    id: int
    content: str
    special: bool  # skipped by decode(skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------
# Backends: both take text without BOS/EOS handling and know nothing of tokenizer_config.json.
# ---------------------------------------------------------------------------------------------


class _HFBackend:
    """An HF `tokenizers.Tokenizer`; token pieces are byte-level (GPT-2) or metaspace (sentencepiece)."""

    def __init__(self, tok: tokenizers.Tokenizer):
        self.tok = tok
        self.added = {
            i: SpecialToken(i, t.content, t.special) for i, t in tok.get_added_tokens_decoder().items()
        }
        decoder_json = tok.decoder.__getstate__().decode() if tok.decoder is not None else ""
        self.byte_level = '"ByteLevel"' in decoder_json
        self.vocab_size = max(tok.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def piece(self, token_id: int) -> str | None:
        return self.tok.id_to_token(token_id)

    def token_id(self, content: str) -> int | None:
        return self.tok.token_to_id(content)

    def piece_bytes(self, token_id: int) -> bytes:
        if token_id in self.added:
            return self.added[token_id].content.encode()
        piece = self.piece(token_id)
        if piece is None:
            return b""
        if self.byte_level:
            if all(c in _BYTE_OF_CHAR for c in piece):
                return bytes(_BYTE_OF_CHAR[c] for c in piece)
            return piece.encode()
        return _metaspace_piece_bytes(piece)


def _metaspace_piece_bytes(piece: str) -> bytes:
    match = _BYTE_PIECE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace(_METASPACE, " ").encode()


class _SentencePieceBackend:
    """A sentencepiece processor plus the special tokens it cannot see in text (control, unk, added)."""

    def __init__(self, sp: sentencepiece.SentencePieceProcessor, added: Iterable[SpecialToken] = ()):
        self.sp = sp
        self.sp_size = sp.get_piece_size()
        self.added: dict[int, SpecialToken] = {}
        for i in range(self.sp_size):
            if sp.is_control(i) or sp.is_unknown(i):
                self.added[i] = SpecialToken(i, sp.id_to_piece(i), special=True)
        for token in added:
            self.added[token.id] = token
        self._id_of_content = {t.content: t.id for t in self.added.values() if t.content}
        contents = sorted(self._id_of_content, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, contents)) + ")") if contents else None
        self.vocab_size = max([self.sp_size - 1, *self.added]) + 1
        pieces = sp.encode("a", out_type=str)
        self._add_dummy_prefix = bool(pieces) and pieces[0].startswith(_METASPACE)

    def encode(self, text: str) -> list[int]:
        if self._split is None:
            return self.sp.encode(text)
        ids: list[int] = []
        for i, chunk in enumerate(self._split.split(text)):
            if i % 2:
                ids.append(self._id_of_content[chunk])
            elif chunk:
                ids.extend(self.sp.encode(chunk))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if token_id in self.added:
                parts.append(self._decode_run(run, at_start=not parts))
                parts.append(self.added[token_id].content)
                run = []
            elif 0 <= token_id < self.sp_size:
                run.append(token_id)
        parts.append(self._decode_run(run, at_start=not parts))
        return "".join(parts)

    def _decode_run(self, run: list[int], at_start: bool) -> str:
        if not run:
            return ""
        text = self.sp.decode(run)
        # sentencepiece drops the dummy-prefix space of every run; HF's Metaspace decoder only at the
        # very start of the text, so a run after a special token keeps its space.
        if not at_start and self._add_dummy_prefix and self.sp.id_to_piece(run[0]).startswith(_METASPACE):
            text = " " + text
        return text

    def piece(self, token_id: int) -> str | None:
        if token_id in self.added:
            return self.added[token_id].content
        if 0 <= token_id < self.sp_size:
            return self.sp.id_to_piece(token_id)
        return None

    def token_id(self, content: str) -> int | None:
        if content in self._id_of_content:
            return self._id_of_content[content]
        token_id = self.sp.piece_to_id(content)
        return None if token_id == self.sp.unk_id() and content != self.sp.id_to_piece(token_id) else token_id

    def piece_bytes(self, token_id: int) -> bytes:
        if token_id in self.added:
            return self.added[token_id].content.encode()
        if not 0 <= token_id < self.sp_size:
            return b""
        piece = self.sp.id_to_piece(token_id)
        if self.sp.is_byte(token_id):
            return _metaspace_piece_bytes(piece)
        return piece.replace(_METASPACE, " ").encode()


# ---------------------------------------------------------------------------------------------
# The public interface.
# ---------------------------------------------------------------------------------------------


@dataclass
class _SpecialConfig:
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    extra_eos_ids: list[int] = field(default_factory=list)
    unk_token_id: int | None = None
    pad_token_id: int | None = None
    add_bos_token: bool = False
    add_eos_token: bool = False
    chat_template: str | None = None


class Tokenizer:
    """Text <-> token ids, with the special-token facts the engine and the chat template need."""

    def __init__(self, backend: _HFBackend | _SentencePieceBackend, config: _SpecialConfig):
        self._backend = backend
        self.vocab_size: int = backend.vocab_size
        self.bos_token_id = config.bos_token_id
        self.eos_token_id = config.eos_token_id
        self.unk_token_id = config.unk_token_id
        self.pad_token_id = config.pad_token_id
        self.bos_token = self._content(config.bos_token_id)
        self.eos_token = self._content(config.eos_token_id)
        eos_ids = [config.eos_token_id, *config.extra_eos_ids]
        self.eos_token_ids: list[int] = list(dict.fromkeys(i for i in eos_ids if i is not None))
        self.add_bos_token = config.add_bos_token and config.bos_token_id is not None
        self.add_eos_token = config.add_eos_token and config.eos_token_id is not None
        self.chat_template = config.chat_template
        named = {config.bos_token_id, config.eos_token_id, config.unk_token_id, config.pad_token_id}
        self.all_special_ids: set[int] = {t.id for t in backend.added.values() if t.special} | {
            i for i in named if i is not None
        }

    def _content(self, token_id: int | None) -> str | None:
        return None if token_id is None else self._backend.piece(token_id)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self._backend.encode(text)
        if add_special_tokens and self.add_bos_token:
            ids.insert(0, self.bos_token_id)
        if add_special_tokens and self.add_eos_token:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids]
        return self._backend.decode(ids)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self._backend.piece(int(i)) or "" for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_id(token)

    def token_to_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes this token contributes to the text (a byte-fallback token: its raw byte)."""
        return self._backend.piece_bytes(int(token_id))

    id_to_bytes = token_to_bytes

    def token_str(self, token_id: int) -> str:
        """The token as logprobs text; bytes that are not valid UTF-8 are written as OpenAI does."""
        raw = self.token_to_bytes(token_id)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)

    @classmethod
    def from_pretrained_dir(cls, path: str | os.PathLike) -> Tokenizer:
        return _from_pretrained_dir(Path(path))

    @classmethod
    def from_gguf(cls, reader_or_path: Any) -> Tokenizer:
        if isinstance(reader_or_path, (str, os.PathLike)):
            metadata = read_gguf_tokenizer_metadata(reader_or_path)
            source = str(reader_or_path)
        else:
            metadata = _metadata_from_reader(reader_or_path)
            source = str(getattr(reader_or_path, "path", "<GGUFReader>"))
        return _from_gguf_metadata(metadata, source)


# ---------------------------------------------------------------------------------------------
# HF checkpoint directories.
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read JSON ({e})") from e


def _from_pretrained_dir(path: Path) -> Tokenizer:
    if not path.is_dir():
        raise TokenizerError(f"{path}: not a directory")
    config_path = path / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    added = _config_added_tokens(config)
    if (path / "tokenizer.json").is_file():
        backend = _load_tokenizer_json(path / "tokenizer.json")
    elif (path / "tokenizer.model").is_file():
        backend = _load_sentencepiece_file(path / "tokenizer.model", added)
    else:
        raise TokenizerError(f"{path}: no tokenizer.json or tokenizer.model")
    bos_id = _config_token_id(backend, config.get("bos_token"))
    special = _SpecialConfig(
        bos_token_id=bos_id,
        eos_token_id=_config_token_id(backend, config.get("eos_token")),
        unk_token_id=_config_token_id(backend, config.get("unk_token")),
        pad_token_id=_config_token_id(backend, config.get("pad_token")),
        add_bos_token=bool(config.get("add_bos_token", _adds_bos_by_default(backend, bos_id))),
        add_eos_token=bool(config.get("add_eos_token", False)),
        chat_template=_chat_template(path, config),
    )
    return Tokenizer(backend, special)


def _load_tokenizer_json(path: Path) -> _HFBackend:
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception for bad JSON and unknown components
        raise TokenizerError(f"{path}: cannot load tokenizer ({str(e).splitlines()[0]})") from e
    return _HFBackend(tok)


def _load_sentencepiece_file(path: Path, added: list[SpecialToken]) -> _SentencePieceBackend:
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.load(str(path))
    except (OSError, RuntimeError) as e:
        raise TokenizerError(f"{path}: cannot load sentencepiece model ({e})") from e
    extra = [t for t in added if t.id >= sp.get_piece_size() or sp.id_to_piece(t.id) != t.content]
    return _SentencePieceBackend(sp, extra)


def _adds_bos_by_default(backend: _HFBackend | _SentencePieceBackend, bos_id: int | None) -> bool:
    """Without add_bos_token in tokenizer_config.json: what tokenizer.json's post-processor does, or
    LlamaTokenizer's default (yes) for a bare tokenizer.model."""
    if bos_id is None:
        return False
    if isinstance(backend, _SentencePieceBackend):
        return True
    ids = backend.tok.encode("a", add_special_tokens=True).ids
    return bool(ids) and ids[0] == bos_id


def _config_added_tokens(config: dict) -> list[SpecialToken]:
    decoder = config.get("added_tokens_decoder") or {}
    return [
        SpecialToken(int(i), t["content"], bool(t.get("special", False)))
        for i, t in decoder.items()
        if isinstance(t, dict) and "content" in t
    ]


def _config_token_id(backend, token: Any) -> int | None:
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


# ---------------------------------------------------------------------------------------------
# GGUF metadata.
# ---------------------------------------------------------------------------------------------

# GGUF value types -> struct format (scalars) and numpy dtype (arrays); 8 is string, 9 array.
_GGUF_SCALAR = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_GGUF_NUMPY = {
    0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
    12: "<f8",
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_U64 = struct.Struct("<Q")


def read_gguf_tokenizer_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The `tokenizer.*` key/values of a GGUF file, parsed without touching its tensors."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_gguf_metadata(buf, str(path))
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{path}: cannot read GGUF file ({e})") from e
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: corrupt GGUF metadata ({e})") from e


def _parse_gguf_metadata(buf, source: str) -> dict[str, Any]:
    magic, version = buf[:4], struct.unpack_from("<I", buf, 4)[0]
    if magic != b"GGUF":
        raise TokenizerError(f"{source}: not a GGUF file (magic {magic!r})")
    if version < 2:
        raise TokenizerError(f"{source}: unsupported GGUF version {version}")
    _, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos = 24
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = _read_gguf_string(buf, pos)
        (value_type,) = struct.unpack_from("<I", buf, pos)
        value, pos = _read_gguf_value(buf, pos + 4, value_type)
        if key.startswith("tokenizer."):
            metadata[key] = value
    return metadata


def _read_gguf_string(buf, pos: int) -> tuple[str, int]:
    (n,) = _U64.unpack_from(buf, pos)
    end = pos + 8 + n
    return buf[pos + 8 : end].decode("utf-8"), end


def _read_gguf_value(buf, pos: int, value_type: int) -> tuple[Any, int]:
    if value_type == _GGUF_STRING:
        return _read_gguf_string(buf, pos)
    if value_type in _GGUF_SCALAR:
        fmt = _GGUF_SCALAR[value_type]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if value_type != _GGUF_ARRAY:
        raise ValueError(f"unknown GGUF value type {value_type}")
    item_type, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if item_type in _GGUF_NUMPY:
        dtype = np.dtype(_GGUF_NUMPY[item_type])
        items = np.frombuffer(buf, dtype=dtype, count=count, offset=pos)
        values = items.astype(bool).tolist() if item_type == 7 else items.tolist()
        return values, pos + count * dtype.itemsize
    if item_type == _GGUF_STRING:
        return _read_gguf_string_array(buf, pos, count)
    values = []
    for _ in range(count):
        value, pos = _read_gguf_value(buf, pos, item_type)
        values.append(value)
    return values, pos


def _read_gguf_string_array(buf, pos: int, count: int) -> tuple[list[str], int]:
    unpack = _U64.unpack_from
    values = []
    for _ in range(count):
        (n,) = unpack(buf, pos)
        pos += 8
        values.append(buf[pos : pos + n].decode("utf-8", errors="replace"))
        pos += n
    return values, pos


def _metadata_from_reader(reader: Any) -> dict[str, Any]:
    """The `tokenizer.*` key/values of a gguf.GGUFReader (its fields hold numpy views of the file)."""
    metadata = {}
    for key, f in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        types = [int(t) for t in f.types]
        if types[0] == _GGUF_ARRAY and types[1:] == [_GGUF_STRING]:
            metadata[key] = [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        elif types[0] == _GGUF_ARRAY:
            values = [f.parts[i] for i in f.data]
            metadata[key] = np.concatenate(values).tolist() if values else []
        elif types[0] == _GGUF_STRING:
            metadata[key] = bytes(f.parts[f.data[0]]).decode("utf-8")
        else:
            metadata[key] = f.parts[f.data[0]][0].item()
    return metadata


def _from_gguf_metadata(metadata: dict[str, Any], source: str) -> Tokenizer:
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if model is None or tokens is None:
        raise TokenizerError(f"{source}: GGUF has no tokenizer.ggml.model / tokenizer.ggml.tokens")
    token_types = metadata.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
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
    special = _SpecialConfig(
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


def _gguf_pre_tokenizer(metadata: dict[str, Any], source: str) -> _PreTokenizer:
    name = metadata.get("tokenizer.ggml.pre") or "default"
    if name not in _PRE_TOKENIZERS:
        raise TokenizerError(f"{source}: unsupported GGUF pre-tokenizer {name!r}")
    return _PRE_TOKENIZERS[name]


def _gguf_byte_level_bpe(metadata, tokens: list[str], token_types: list[int], source: str) -> _HFBackend:
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
    return _HFBackend(tok)


# -- llama: sentencepiece BPE, rebuilt as a ModelProto ------------------------------------------


def _gguf_sentencepiece(
    metadata, tokens: list[str], token_types: list[int], source: str
) -> _SentencePieceBackend:
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
    return _SentencePieceBackend(sp)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _proto_field(number: int, value: bytes | str | int | float | bool) -> bytes:
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return _varint(number << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def sentencepiece_model_proto(
    pieces: Sequence[str],
    scores: Sequence[float],
    types: Sequence[int],
    add_dummy_prefix: bool = True,
    remove_extra_whitespaces: bool = False,
) -> bytes:
    """A serialized sentencepiece ModelProto (BPE) for the given pieces, written field by field."""
    parts = [
        _proto_field(1, _proto_field(1, p) + _proto_field(2, float(s)) + _proto_field(3, int(t)))
        for p, s, t in zip(pieces, scores, types, strict=True)
    ]
    trainer_spec = (
        _proto_field(3, 2)  # model_type: BPE
        + _proto_field(4, len(pieces))  # vocab_size
        + _proto_field(35, BYTE in types)  # byte_fallback
        + _proto_field(40, list(types).index(UNKNOWN))  # unk_id
    )
    normalizer_spec = (
        _proto_field(1, "identity")
        + _proto_field(3, add_dummy_prefix)
        + _proto_field(4, remove_extra_whitespaces)
        + _proto_field(5, True)  # escape_whitespaces
    )
    return b"".join(parts) + _proto_field(2, trainer_spec) + _proto_field(3, normalizer_spec)
