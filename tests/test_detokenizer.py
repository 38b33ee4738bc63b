import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jax_engine.detokenizer import INITIAL_PREFIX_WINDOW, IncrementalDetokenizer
from jax_engine.tokenizer import Tokenizer

# Fixtures shared with the tokenizer tests; tests reach them through request.getfixturevalue.
from tests.test_tokenizer import (  # noqa: F401
    gguf_sp_tokenizer,
    llama_gguf,
    smollm2,
    sp_model,
    sp_processor,
    sp_tokenizer,
)

MULTIBYTE_TEXT = "naïve 東京 😀 👨‍👩‍👧 ß Ω → ✓ hello world"
BACKENDS = ["smollm2", "sp_tokenizer", "gguf_sp_tokenizer"]


def stream(detokenizer: IncrementalDetokenizer, ids: list[int], chunk_sizes: list[int]) -> list[str]:
    outputs, start = [], 0
    for size in chunk_sizes:
        if start >= len(ids):
            break
        outputs.append(detokenizer.step(ids[start : start + size]))
        start += size
    if start < len(ids):
        outputs.append(detokenizer.step(ids[start:]))
    outputs.append(detokenizer.flush())
    return outputs


def token_ids(tokenizer: Tokenizer):
    """Random ids, mixed with the ids of multi-byte text so split characters are common."""
    multibyte = tokenizer.encode(MULTIBYTE_TEXT, add_special_tokens=False)
    return st.lists(
        st.one_of(st.integers(0, tokenizer.vocab_size - 1), st.sampled_from(multibyte)), max_size=40
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_streamed_text_equals_decode_of_all_ids(request, backend, skip_special_tokens):
    tokenizer = request.getfixturevalue(backend)

    @settings(max_examples=150, deadline=None)
    @given(token_ids(tokenizer), st.lists(st.integers(1, 4), max_size=40))
    def check(ids, chunk_sizes):
        detokenizer = IncrementalDetokenizer(tokenizer, [], skip_special_tokens=skip_special_tokens)
        streamed = "".join(stream(detokenizer, ids, chunk_sizes))
        assert streamed == tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_streamed_text_after_a_prompt_is_the_decoded_continuation(request, backend):
    tokenizer = request.getfixturevalue(backend)
    prompt = tokenizer.encode("hello world")

    @settings(max_examples=150, deadline=None)
    @given(token_ids(tokenizer))
    def check(ids):
        detokenizer = IncrementalDetokenizer(tokenizer, prompt)
        streamed = "".join(stream(detokenizer, ids, [1] * len(ids)))
        full, prompt_text = tokenizer.decode(prompt + ids), tokenizer.decode(prompt)
        assert full.startswith(prompt_text)
        assert streamed == full[len(prompt_text) :]

    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_step_emits_a_broken_character(request, backend):
    tokenizer = request.getfixturevalue(backend)
    ids = tokenizer.encode(MULTIBYTE_TEXT, add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer, [])
    outputs = [detokenizer.step([i]) for i in ids] + [detokenizer.flush()]
    assert not any("\ufffd" in out for out in outputs)
    assert "".join(outputs) == MULTIBYTE_TEXT
    assert outputs[-1] == ""  # nothing was left over


@pytest.mark.parametrize("backend", ["sp_tokenizer", "gguf_sp_tokenizer"])
def test_sentencepiece_word_keeps_its_leading_space(request, backend):
    tokenizer = request.getfixturevalue(backend)
    ids = tokenizer.encode("hello world fox")
    prompt_length = len(tokenizer.encode("hello"))
    detokenizer = IncrementalDetokenizer(tokenizer, ids[:prompt_length])
    outputs = [detokenizer.step([i]) for i in ids[prompt_length:]]
    assert outputs[0].startswith(" w")
    assert "".join(outputs) == " world fox"


def test_sentencepiece_first_generated_word_without_prompt_has_no_space(request):
    tokenizer = request.getfixturevalue("sp_tokenizer")
    ids = tokenizer.encode("hello world", add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer, [])
    assert "".join(detokenizer.step([i]) for i in ids) == "hello world"


def test_incomplete_character_is_held_back_until_flush(request):
    tokenizer = request.getfixturevalue("smollm2")
    first_byte = tokenizer.encode("😀")[0]
    detokenizer = IncrementalDetokenizer(tokenizer, tokenizer.encode("hi"))
    assert detokenizer.step([first_byte]) == ""
    assert detokenizer.flush() == "\ufffd"
    assert detokenizer.flush() == ""


def test_special_tokens_are_emitted_only_when_not_skipped(request):
    tokenizer = request.getfixturevalue("smollm2")
    im_end = tokenizer.encode("<|im_end|>")
    assert IncrementalDetokenizer(tokenizer, [], skip_special_tokens=True).step(im_end) == ""
    assert IncrementalDetokenizer(tokenizer, [], skip_special_tokens=False).step(im_end) == "<|im_end|>"


class DecodeLengthSpy:
    """Delegates to a tokenizer, remembering the longest id list it was asked to decode."""

    def __init__(self, tokenizer: Tokenizer):
        self._tokenizer = tokenizer
        self.all_special_ids = tokenizer.all_special_ids
        self.longest_decode = 0

    def decode(self, ids, skip_special_tokens=True):
        self.longest_decode = max(self.longest_decode, len(ids))
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_cost_does_not_grow_with_sequence_length(request, backend):
    tokenizer = request.getfixturevalue(backend)
    spy = DecodeLengthSpy(tokenizer)
    long_prompt = tokenizer.encode(MULTIBYTE_TEXT * 20)
    detokenizer = IncrementalDetokenizer(spy, long_prompt)
    generated = tokenizer.encode(MULTIBYTE_TEXT * 50, add_special_tokens=False)
    assert len(generated) > 500
    text = "".join(detokenizer.step([i]) for i in generated) + detokenizer.flush()
    assert text == tokenizer.decode(long_prompt + generated)[len(tokenizer.decode(long_prompt)) :]
    # The longest window: the prompt's tail, or a previous emission plus one character's byte tokens.
    assert spy.longest_decode <= INITIAL_PREFIX_WINDOW + 1 + 4
