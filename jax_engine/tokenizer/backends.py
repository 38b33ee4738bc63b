"""The two tokenizer backends: HF `tokenizers` and `sentencepiece`.

Both take text without BOS/EOS handling and know nothing of tokenizer_config.json; the facade adds those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sentencepiece
import tokenizers

# Longer decodes go through decode_batch, which lets go of the GIL; short ones (the detokenizer's windows, every
# step) skip its overhead.
_GIL_FREE_DECODE_MIN_IDS = 1024
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
METASPACE = "\u2581"


@dataclass(frozen=True)
class SpecialToken:
    id: int
    content: str
    special: bool  # skipped by decode(skip_special_tokens=True)


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


class HFBackend:
    """An HF `tokenizers.Tokenizer`; token pieces are byte-level (GPT-2) or metaspace (sentencepiece)."""

    def __init__(self, tok: tokenizers.Tokenizer):
        self.tok = tok
        self.added = {
            i: SpecialToken(i, t.content, t.special) for i, t in tok.get_added_tokens_decoder().items()
        }
        decoder_json = tok.decoder.__getstate__().decode() if tok.decoder is not None else ""
        self.byte_level = '"ByteLevel"' in decoder_json
        self.vocab_size = max(tok.get_vocab(with_added_tokens=True).values(), default=-1) + 1
        self.normalizes = tok.normalizer is not None

    def encode(self, text: str) -> list[int]:
        # encode_batch lets go of the GIL while it works; encode holds it (a 1 MB text: a second of no Python).
        return self.tok.encode_batch([text], add_special_tokens=False)[0].ids

    def decode(self, ids: Sequence[int]) -> str:
        if len(ids) >= _GIL_FREE_DECODE_MIN_IDS:
            return self.tok.decode_batch([list(ids)], skip_special_tokens=False)[0]
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
        return metaspace_piece_bytes(piece)


def metaspace_piece_bytes(piece: str) -> bytes:
    match = _BYTE_PIECE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace(METASPACE, " ").encode()


class SentencePieceBackend:
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
        self._add_dummy_prefix = bool(pieces) and pieces[0].startswith(METASPACE)
        self.normalizes = True  # whitespace and NFKC rules live inside the model; assume they may shrink text

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
        if not at_start and self._add_dummy_prefix and self.sp.id_to_piece(run[0]).startswith(METASPACE):
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
            return metaspace_piece_bytes(piece)
        return piece.replace(METASPACE, " ").encode()


Backend = HFBackend | SentencePieceBackend
