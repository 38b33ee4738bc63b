"""Tensor and data parallelism on 4 CPU devices (XLA's forced host device count), against the golden logits
of HF transformers and against one device. The split runs in a subprocess (tests/parallel_probe.py): the
device count is fixed when jax starts, and this process stays on one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jax_engine.config import ConfigError
from jax_engine.engine_client import EngineStats
from tests.engine_utils import engine_for

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4
LOGITS_PROMPT = 2


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("parallel")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "tests.parallel_probe", str(out_dir)], cwd=ROOT, env=env, check=True,
                   timeout=600)
    with open(out_dir / "facts.json") as f:
        facts = json.load(f)
    return dict(np.load(out_dir / "tp.npz")), facts


@pytest.mark.parametrize("name,tp", [(m, tp) for m in ("llama", "qwen2", "qwen3") for tp in (2, 4)])
def test_tensor_parallel_logits_and_greedy_tokens_match_transformers(probe, name, tp):
    out, _ = probe
    golden = np.load(os.path.join(GOLDEN, name, "golden.npz"))
    key = f"{name}/tp{tp}"
    np.testing.assert_allclose(out[f"{key}/prefill_logits"], golden[f"prefill_logits_{LOGITS_PROMPT}"],
                               atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(out[f"{key}/decode_logits"], golden[f"decode_logits_{LOGITS_PROMPT}"][1:],
                               atol=TOLERANCE, rtol=0)
    assert out[f"{key}/greedy"].tolist() == golden[f"greedy_tokens_{LOGITS_PROMPT}"].tolist()


# TP 2: the norms (replicated) are all that is over a half; TP 4 replicates the 2 KV heads, so the k and v
# projections count twice.
@pytest.mark.parametrize("tp,at_most", [(2, 1.01), (4, 1.12)])
def test_weights_per_device_are_about_one_nth_of_one_device(probe, tp, at_most):
    out, _ = probe
    share = out[f"llama/tp{tp}/memory"][0] / out["llama/tp1/memory"][0]
    assert 1 / tp <= share < at_most / tp


def test_kv_heads_below_tp_size_are_replicated_one_per_device(probe):
    """The tiny Llama has 2 KV heads (GQA, 4 query heads): TP 2 holds one per device; TP 4 replicates each on
    two devices, one per device again (its logits and tokens: the llama-4 case above)."""
    out, _ = probe
    kv_per_block = {tp: out[f"llama/tp{tp}/memory"][1] for tp in (1, 2, 4)}
    assert kv_per_block[2] * 2 == kv_per_block[1]
    assert kv_per_block[4] * 2 == kv_per_block[1]


@pytest.mark.parametrize("tp", [2, 4])
def test_default_model_split_matches_one_device(probe, tp):
    out, _ = probe
    golden = np.load(os.path.join(GOLDEN, "smollm2_golden.npz"))
    np.testing.assert_allclose(out[f"smollm2/tp{tp}/last_logits"], out["smollm2/tp1/last_logits"],
                               atol=TOLERANCE, rtol=0)
    assert out[f"smollm2/tp{tp}/greedy_0"].tolist() == out["smollm2/tp1/greedy_0"].tolist()
    assert out["smollm2/tp1/greedy_0"].tolist() == golden["greedy_tokens_0"].tolist()


def test_data_parallel_sends_a_repeated_prefix_to_the_replica_that_cached_it(probe):
    _, facts = probe
    dp = facts["data_parallel"]
    assert dp["first"]["cached_tokens"] == 0
    assert dp["repeat"]["replica"] == dp["first"]["replica"]
    assert dp["repeat"]["cached_tokens"] == 48  # the three shared 16-token blocks


def test_data_parallel_spreads_distinct_prompts_over_replicas_on_their_own_devices(probe):
    _, facts = probe
    a, b = facts["data_parallel"]["distinct"]
    assert a["replica"] != b["replica"] and a["device"] != b["device"]
    assert all(queries > 0 for queries in facts["data_parallel"]["replica_stats"])


def test_tensor_parallel_with_int8_is_refused():
    with pytest.raises(ConfigError, match="--quantization int8 runs on one device"):
        engine_for(os.path.join(GOLDEN, "llama"), tensor_parallel_size=2, quantization="int8")


def test_more_devices_than_the_host_has_is_refused():
    with pytest.raises(ConfigError, match="needs 2 devices; this process sees 1"):
        engine_for(os.path.join(GOLDEN, "llama"), tensor_parallel_size=2)


def test_metrics_label_each_data_parallel_replica():
    from gateway.metrics import Metrics

    replicas = (EngineStats(num_running=2, prefix_cache_hits=32), EngineStats(num_running=1))
    metrics = Metrics("m", lambda: EngineStats(num_running=3, prefix_cache_hits=32, replicas=replicas))
    text = metrics.exposition().decode()
    assert 'cortexstream:num_requests_running{engine="0",model_name="m"} 2.0' in text
    assert 'cortexstream:num_requests_running{engine="1",model_name="m"} 1.0' in text
    assert 'cortexstream:prefix_cache_hits_total{engine="0",model_name="m"} 32.0' in text
