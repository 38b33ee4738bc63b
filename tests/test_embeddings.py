"""The pooling runner (--task embed) against HF transformers: hidden states of tests/golden/qwen3_embed pooled
sentence-transformers' way in tests/golden/make_golden_embeddings.py (embeddings.npz)."""

import os

import numpy as np
import pytest

from jax_engine.config import ConfigError
from jax_engine.errors import ContextLengthExceeded, RequestField, RequestValidationError
from jax_engine.loader import load_checkpoint
from jax_engine.pooler import PoolerConfig
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
EMBED = os.path.join(GOLDEN, "qwen3_embed")  # Qwen3Model, tensors without "model.", is_matryoshka
CAUSAL = os.path.join(GOLDEN, "qwen3")  # the same weights as Qwen3ForCausalLM
COSINE = 0.9999
ATOL = 1e-5
GOLDEN_EMBEDDINGS = np.load(os.path.join(EMBED, "embeddings.npz"))
INDICES = [i for i in range(10) if f"input_ids_{i}" in GOLDEN_EMBEDDINGS]
INPUTS = [GOLDEN_EMBEDDINGS[f"input_ids_{i}"].tolist() for i in INDICES]


def golden(kind: str) -> list[np.ndarray]:
    return [GOLDEN_EMBEDDINGS[f"{kind}_{i}"] for i in INDICES]


def embed(engine, prompts: list[list[int]], params: PoolingParams | None = None) -> list[np.ndarray]:
    """Every prompt admitted at once, so the scheduler batches them."""
    for i, prompt in enumerate(prompts):
        engine.add_request(f"e{i:03d}", prompt, params or PoolingParams())
    return embed_pending(engine)


def embed_pending(engine) -> list[np.ndarray]:
    """Step until done; each output is final and has its embedding. In request id order."""
    results = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            assert out.finished and out.finish_reason == "stop" and out.embedding is not None
            assert out.new_token_ids == [] and out.num_output_tokens == 0
            results[out.request_id] = out.embedding
    return [results[key] for key in sorted(results)]


def assert_embeddings_match(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == np.float32 and a.shape == e.shape
        cosine = float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e)))
        assert cosine > COSINE, cosine
        np.testing.assert_allclose(a, e, atol=ATOL, rtol=0)


def test_tokenizer_appends_what_the_post_processor_appends():
    tokenizer = load_checkpoint(EMBED, with_weights=False).tokenizer
    for i in INDICES:
        assert tokenizer.encode(str(GOLDEN_EMBEDDINGS[f"text_{i}"])) == GOLDEN_EMBEDDINGS[f"input_ids_{i}"].tolist()


@pytest.fixture(scope="module")
def last_engine():
    """LAST pooling, normalized (the defaults); 64-token steps: the longest input takes two prefill chunks."""
    return engine_for(EMBED, task="embed", max_num_batched_tokens=64)


@pytest.fixture(scope="module")
def mean_engine():
    """MEAN pooling in 16-token steps: the longest input is pooled across eight chunks."""
    return engine_for(EMBED, task="embed", pooler_config={"pooling_type": "MEAN"}, max_num_batched_tokens=16)


def test_the_inputs_span_several_chunks():
    assert max(map(len, INPUTS)) > 64


@pytest.mark.parametrize(("engine_name", "kind"), [("last_engine", "last"), ("mean_engine", "mean")])
def test_pooling_matches_transformers(engine_name, kind, request):
    engine = request.getfixturevalue(engine_name)
    assert_embeddings_match(embed(engine, INPUTS), golden(kind))
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks  # no KV kept


def test_unnormalized_last_token_is_the_last_hidden_state():
    engine = engine_for(EMBED, task="embed", pooler_config={"pooling_type": "LAST", "normalize": False},
                        max_num_batched_tokens=64)
    assert_embeddings_match(embed(engine, INPUTS), golden("last_raw"))


def test_matryoshka_dimensions_truncate_before_normalizing(last_engine):
    assert_embeddings_match(embed(last_engine, INPUTS, PoolingParams(dimensions=16)), golden("last_dim16"))


def test_a_causal_lm_checkpoint_embeds_as_its_base_model():
    """qwen3 (Qwen3ForCausalLM, "model."-prefixed tensors) holds qwen3_embed's weights."""
    engine = engine_for(CAUSAL, task="embed", max_num_batched_tokens=64)
    assert_embeddings_match(embed(engine, INPUTS), golden("last"))


def test_a_preempted_request_starts_its_pooling_over(mean_engine):
    """Preemption drops a request's KV and recomputes it from position 0: what the dropped chunks pooled must
    not count twice."""
    engine = mean_engine
    preemptions = engine.scheduler.num_preemptions
    longest = max(INDICES, key=lambda i: len(INPUTS[i]))
    engine.add_request("long", INPUTS[longest], PoolingParams())
    assert engine.step() == []  # the first 16-token chunk
    (req,) = engine.scheduler.running
    engine.scheduler.preempt(req)
    assert engine.scheduler.num_preemptions == preemptions + 1
    (vector,) = embed_pending(engine)
    assert_embeddings_match([vector], [GOLDEN_EMBEDDINGS[f"mean_{longest}"]])


def test_last_token_pooling_reuses_the_prefix_cache_and_mean_turns_it_off(last_engine, mean_engine):
    engine = last_engine
    longest = max(INPUTS, key=len)
    first = embed(engine, [longest])
    engine.add_request("again", longest, PoolingParams())
    (out,) = [o for o in engine.step()]
    assert out.num_cached_tokens == (len(longest) - 1) // 16 * 16 > 0
    np.testing.assert_allclose(out.embedding, first[0], atol=ATOL, rtol=0)
    assert not mean_engine.block_manager.enable_prefix_caching


def test_the_engine_refuses_what_its_task_cannot_serve():
    engine = engine_for(EMBED, task="embed", max_model_len=32)
    with pytest.raises(RequestValidationError) as e:
        engine.validate([5, 6], SamplingParams())
    assert e.value.field is RequestField.TASK
    engine.validate([5] * 32, PoolingParams())  # the whole context is the prompt's: nothing is generated
    with pytest.raises(ContextLengthExceeded):
        engine.validate([5] * 33, PoolingParams())
    for dimensions in (0, 65):
        with pytest.raises(RequestValidationError) as e:
            engine.validate([5], PoolingParams(dimensions=dimensions))
        assert e.value.field is RequestField.DIMENSIONS
    not_matryoshka = engine_for(CAUSAL, task="embed")
    with pytest.raises(RequestValidationError, match="Matryoshka") as e:
        not_matryoshka.validate([5], PoolingParams(dimensions=16))
    assert e.value.field is RequestField.DIMENSIONS
    with pytest.raises(RequestValidationError) as e:
        engine_for(CAUSAL).validate([5], PoolingParams())
    assert e.value.field is RequestField.TASK


def test_a_headless_model_cannot_generate_and_pooler_config_is_checked():
    with pytest.raises(ConfigError, match="no LM head"):
        engine_for(EMBED)
    with pytest.raises(ConfigError, match="pooling_type 'CLS'"):
        PoolerConfig.from_dict({"pooling_type": "CLS"})
    with pytest.raises(ConfigError, match="unknown key"):
        PoolerConfig.from_dict({"pooling": "MEAN"})
    with pytest.raises(ConfigError, match="--task embed only"):
        engine_for(CAUSAL, pooler_config={"pooling_type": "MEAN"})
