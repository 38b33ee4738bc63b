"""A sentencepiece ModelProto written field by field, for vocabularies that come without one (GGUF "llama").

Piece types are sentencepiece's ModelProto.SentencePiece.Type, which GGUF's tokenizer.ggml.token_type reuses.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def sentencepiece_model_proto(
    pieces: Sequence[str],
    scores: Sequence[float],
    types: Sequence[int],
    add_dummy_prefix: bool = True,
    remove_extra_whitespaces: bool = False,
) -> bytes:
    """A serialized sentencepiece ModelProto (BPE) for the given pieces."""
    parts = [
        _field(1, _field(1, p) + _field(2, float(s)) + _field(3, int(t)))
        for p, s, t in zip(pieces, scores, types, strict=True)
    ]
    trainer_spec = (
        _field(3, 2)  # model_type: BPE
        + _field(4, len(pieces))  # vocab_size
        + _field(35, BYTE in types)  # byte_fallback
        + _field(40, list(types).index(UNKNOWN))  # unk_id
    )
    normalizer_spec = (
        _field(1, "identity")
        + _field(3, add_dummy_prefix)
        + _field(4, remove_extra_whitespaces)
        + _field(5, True)  # escape_whitespaces
    )
    return b"".join(parts) + _field(2, trainer_spec) + _field(3, normalizer_spec)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | str | int | float | bool) -> bytes:
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return _varint(number << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data
