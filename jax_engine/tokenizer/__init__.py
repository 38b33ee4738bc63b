"""One tokenizer interface over HF `tokenizers` and `sentencepiece`, built from an HF checkpoint directory
or from GGUF metadata.

tokenizer.py is the facade; backends.py the two libraries behind it; hf_dir.py and gguf_vocab.py build it
from a checkpoint's files; sentencepiece_proto.py writes the ModelProto a GGUF "llama" vocabulary needs.
"""

from jax_engine.tokenizer.gguf_vocab import read_gguf_tokenizer_metadata
from jax_engine.tokenizer.sentencepiece_proto import (
    BYTE,
    CONTROL,
    NORMAL,
    UNKNOWN,
    UNUSED,
    USER_DEFINED,
    sentencepiece_model_proto,
)
from jax_engine.tokenizer.tokenizer import SpecialTokens, Tokenizer, TokenizerError

__all__ = ["BYTE", "CONTROL", "NORMAL", "UNKNOWN", "UNUSED", "USER_DEFINED", "SpecialTokens", "Tokenizer",
           "TokenizerError", "read_gguf_tokenizer_metadata", "sentencepiece_model_proto"]
