"""The embedded default model answers like its reference (HF transformers on the same GGUF)."""

import os

import numpy as np

from compat.chat_template import ChatTemplate
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import forward_logits, new_request, run_to_completion

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def greedy_text(engine, ids, max_tokens=8):
    engine.add_request("q", ids, SamplingParams(temperature=0.0, max_tokens=max_tokens))
    tokens = run_to_completion(engine)["q"]
    return engine.tokenizer.decode(tokens)


def test_raw_prompt_continues_with_paris(smollm2_engine):
    ids = smollm2_engine.tokenizer.encode("The capital of France is")
    assert greedy_text(smollm2_engine, ids).startswith(" Paris")


def test_chat_answer_names_paris(smollm2_engine):
    tok = smollm2_engine.tokenizer
    template = ChatTemplate(tok.chat_template, {"bos_token": tok.bos_token, "eos_token": tok.eos_token})
    text = template.render([{"role": "user", "content": "What is the capital of France?"}])
    ids = tok.encode(text, add_special_tokens=False)
    assert "Paris" in greedy_text(smollm2_engine, ids, max_tokens=16)


def test_last_logits_close_to_transformers(smollm2_engine):
    golden = np.load(os.path.join(GOLDEN, "smollm2_golden.npz"))
    for i in range(2):
        prompt = golden[f"prompt_{i}"].tolist()
        req = new_request(f"golden{i}")
        logits = forward_logits(smollm2_engine, prompt, 0, req)[-1]
        smollm2_engine.block_manager.free(req)
        expected = golden[f"last_logits_{i}"]
        assert int(np.argmax(logits)) == int(np.argmax(expected))
        np.testing.assert_allclose(logits, expected, atol=2e-3, rtol=0)
        smollm2_engine.add_request(f"g{i}", prompt, SamplingParams(temperature=0.0, max_tokens=8))
        assert run_to_completion(smollm2_engine)[f"g{i}"] == golden[f"greedy_tokens_{i}"].tolist()[:8]
