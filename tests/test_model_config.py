"""config.json -> ModelConfig for Gemma 2/3 and Phi-3: the fields their goldens do not spell every way."""

import json
import os

import pytest

from jax_engine.config import ConfigError, ModelConfig

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def read(name: str, file: str = "config.json") -> dict:
    with open(os.path.join(GOLDEN, name, file), encoding="utf-8") as f:
        return json.load(f)


def gemma3(**changes) -> dict:
    config = {**read("gemma3"), "num_hidden_layers": 12}
    config.pop("sliding_window_pattern")
    return {**config, **changes}


def test_gemma3_in_transformers_5_spelling_reads_as_in_the_hubs():
    """transformers 5 writes RoPE per layer type (rope_parameters) and layer_types; the hub's configs say
    rope_theta, rope_local_base_freq, rope_scaling and sliding_window_pattern."""
    assert ModelConfig.from_hf_dict(read("gemma3", "transformers5_config.json")) == \
        ModelConfig.from_hf_dict(read("gemma3"))


def test_gemma3_layers_default_to_five_local_then_one_global():
    types = ModelConfig.from_hf_dict(gemma3()).layer_types
    assert types == (("sliding_attention",) * 5 + ("full_attention",)) * 2


def test_gemma2_layers_alternate_from_a_local_one():
    config = {**read("gemma2"), "num_hidden_layers": 4}
    assert ModelConfig.from_hf_dict(config).layer_types == ("sliding_attention", "full_attention") * 2


def test_gemma2_soft_caps_default_to_gemma2s():
    config = {k: v for k, v in read("gemma2").items() if not k.endswith("softcapping")}
    cfg = ModelConfig.from_hf_dict(config)
    assert (cfg.attn_logit_softcapping, cfg.final_logit_softcapping) == (50.0, 30.0)


def test_layer_types_of_the_wrong_length_are_refused():
    with pytest.raises(ConfigError, match="layer_types"):
        ModelConfig.from_hf_dict(gemma3(layer_types=["full_attention"]))


def test_gemma3_linear_rope_does_not_stretch_the_context():
    """Gemma 3's linear factor is how its global layers reach max_position_embeddings, not past it."""
    cfg = ModelConfig.from_hf_dict(read("gemma3"))
    assert cfg.rope_scaling["factor"] == 8.0 and cfg.max_model_len_limit == cfg.max_position_embeddings


def test_phi3_su_scaling_is_longrope_over_the_top_level_original_context():
    config = read("phi3")
    config["rope_scaling"] = {**config["rope_scaling"], "type": "su"}
    scaling = ModelConfig.from_hf_dict(config).rope_scaling
    assert scaling["rope_type"] == "longrope"
    assert scaling["original_max_position_embeddings"] == 32 and scaling["factor"] == 4.0


@pytest.mark.parametrize(("max_model_len", "long"), [(32, False), (33, True), (128, True)])
def test_longrope_uses_its_long_factors_once_the_served_context_passes_the_original(max_model_len, long):
    cfg = ModelConfig.from_hf_dict(read("phi3")).with_max_model_len(max_model_len)
    assert cfg.rope_scaling["long_context"] is long
    assert cfg.max_model_len_limit == 128
