"""Model and engine configuration."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "Qwen3Model",
    "MixtralForCausalLM",
    "Qwen2MoeForCausalLM",
    "Qwen3MoeForCausalLM",
)
GEMMA_ARCHITECTURES = ("Gemma2ForCausalLM", "Gemma3ForCausalLM")
# Base models without an LM head (Qwen3-Embedding checkpoints may say Qwen3Model): they serve --task embed only.
HEADLESS_ARCHITECTURES = ("Qwen3Model",)


# config.json keys --hf-overrides may change (vLLM's flag): how positions are read. Keys that shape the weights
# cannot change once a checkpoint is written.
HF_OVERRIDABLE = ("rope_scaling", "rope_parameters", "rope_theta", "max_position_embeddings", "sliding_window",
                  "is_matryoshka", "matryoshka_dimensions")
# RoPE scalings whose factor stretches the context the model was trained on (vLLM derives max_model_len so);
# llama3's checkpoints already state the stretched length in max_position_embeddings.
CONTEXT_STRETCHING_ROPE = ("yarn", "linear")


QKV_BIAS = ("Qwen2ForCausalLM", "Qwen2MoeForCausalLM")
QK_NORM = ("Qwen3ForCausalLM", "Qwen3Model", "Qwen3MoeForCausalLM", "Gemma3ForCausalLM")
QWEN_SLIDING_WINDOW_FLAG = ("Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")


class ConfigError(ValueError):
    pass


def moe_fields(arch: str, d: dict) -> dict:
    """The experts of a MoE config.json (Mixtral's and Qwen's spellings); none for a dense model."""
    if arch == "MixtralForCausalLM":
        fields = dict(num_experts=int(d["num_local_experts"]), num_experts_per_tok=int(d["num_experts_per_tok"]),
                      moe_intermediate_size=int(d["intermediate_size"]), norm_topk_prob=True)
    elif arch in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"):
        if int(d.get("decoder_sparse_step", 1)) != 1 or d.get("mlp_only_layers"):
            raise ConfigError("only MoE models whose every layer is sparse are supported (decoder_sparse_step 1, "
                              "no mlp_only_layers)")
        fields = dict(num_experts=int(d["num_experts"]), num_experts_per_tok=int(d["num_experts_per_tok"]),
                      moe_intermediate_size=int(d["moe_intermediate_size"]),
                      norm_topk_prob=bool(d.get("norm_topk_prob", False)),
                      shared_expert_intermediate_size=int(d.get("shared_expert_intermediate_size") or 0))
    else:
        return {}
    if not 0 < fields["num_experts_per_tok"] <= fields["num_experts"]:
        raise ConfigError(f"num_experts_per_tok {fields['num_experts_per_tok']} must be between 1 and the "
                          f"number of experts ({fields['num_experts']})")
    return fields


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    is_matryoshka: bool = False  # embeddings may be truncated to fewer `dimensions` (Matryoshka training)
    matryoshka_dimensions: tuple[int, ...] | None = None  # the only truncations it was trained for, if it says
    # Mixture of experts (0 experts: a dense MLP): every layer's MLP is `num_experts` experts of
    # `moe_intermediate_size`, `num_experts_per_tok` of them per token, plus an optional shared expert.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False
    shared_expert_intermediate_size: int = 0
    # Gemma 2/3: which layers slide ("sliding_attention" / "full_attention" per layer; None: all as
    # sliding_window says), soft-capping, 1/sqrt(query_pre_attn_scalar) attention scale, local layers' RoPE base
    layer_types: tuple[str, ...] | None = None
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    query_pre_attn_scalar: float | None = None
    rope_local_base_freq: float | None = None
    partial_rotary_factor: float = 1.0  # Phi-3/4: RoPE turns only the first head_dim * factor dimensions

    @classmethod
    def from_hf_dict(cls, d: dict, source: str = "config.json") -> ModelConfig:
        archs = d.get("architectures") or []
        arch = archs[0] if archs else "<missing>"
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ConfigError(
                f"{source}: architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
        try:
            num_heads = int(d["num_attention_heads"])
            hidden = int(d["hidden_size"])
            sliding = d.get("sliding_window")
            if arch in QWEN_SLIDING_WINDOW_FLAG and not d.get("use_sliding_window", False):
                sliding = None
            rope_params = d.get("rope_parameters") or {}
            local_rope: dict = {}
            if "full_attention" in rope_params:  # transformers 5 spells Gemma 3's two RoPEs per layer type
                rope_params, local_rope = rope_params["full_attention"], rope_params.get("sliding_attention") or {}
            max_positions = int(d.get("max_position_embeddings", 2048))
            rope_scaling = normalized_rope_scaling(d.get("rope_scaling") or (rope_params or None), max_positions,
                                                   d.get("original_max_position_embeddings"))
            return cls(
                architecture=arch,
                vocab_size=int(d["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(d["intermediate_size"]),
                num_hidden_layers=int(d["num_hidden_layers"]),
                num_attention_heads=num_heads,
                num_key_value_heads=int(d.get("num_key_value_heads") or num_heads),
                head_dim=int(d.get("head_dim") or hidden // num_heads),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                rope_theta=float(d.get("rope_theta") or rope_params.get("rope_theta") or 10000.0),
                rope_scaling=rope_scaling,
                max_position_embeddings=max_positions,
                # a headless model has no lm_head to read; its embedding stands in where a head is built
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)) or arch in HEADLESS_ARCHITECTURES,
                attention_bias=bool(d.get("qkv_bias", arch in QKV_BIAS) or d.get("attention_bias", False)),
                qk_norm=arch in QK_NORM,
                sliding_window=int(sliding) if sliding else None,
                **matryoshka_fields(d),
                **moe_fields(arch, d),
                **_family_fields(arch, d, rope_params, local_rope),
            )
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: invalid or missing field: {e}") from None

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    @property
    def max_model_len_limit(self) -> int:
        """The longest context its positions allow: max_position_embeddings, stretched by a YaRN or linear
        RoPE factor (from the original context YaRN states)."""
        s = self.rope_scaling or {}
        kind = s.get("rope_type", s.get("type"))
        if kind in CONTEXT_STRETCHING_ROPE and s.get("factor") and self.architecture != "Gemma3ForCausalLM":
            trained = s.get("original_max_position_embeddings", self.max_position_embeddings)
            return int(trained * float(s["factor"]))
        return self.max_position_embeddings

    def with_max_model_len(self, max_model_len: int) -> ModelConfig:
        """LongRoPE's long factors once the served context passes the original one, else its short factors
        (llama.cpp's rule: transformers picks them per call by the sequence's length, which would rotate the
        keys already in a shared cache with the other set)."""
        s = self.rope_scaling or {}
        if s.get("rope_type") != "longrope":
            return self
        long = max_model_len > s["original_max_position_embeddings"]
        return self.replace(rope_scaling={**s, "long_context": long})

    def with_hf_overrides(self, overrides: dict | None) -> ModelConfig:
        """config.json values given with --hf-overrides (as vLLM's flag takes them), over the checkpoint's."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(HF_OVERRIDABLE))
        if unknown:
            raise ConfigError(f"--hf-overrides: {', '.join(unknown)} cannot be overridden; these can: "
                              f"{', '.join(HF_OVERRIDABLE)}")
        changes: dict = {}
        try:
            if "max_position_embeddings" in overrides:
                changes["max_position_embeddings"] = int(overrides["max_position_embeddings"])
            if "sliding_window" in overrides:
                changes["sliding_window"] = int(overrides["sliding_window"]) if overrides["sliding_window"] else None
            rope = overrides.get("rope_parameters") or {}
            theta = overrides.get("rope_theta", rope.get("rope_theta"))
            if theta is not None:
                changes["rope_theta"] = float(theta)
            changes.update(matryoshka_fields(overrides))
            if "rope_scaling" in overrides or "rope_parameters" in overrides:
                max_positions = changes.get("max_position_embeddings", self.max_position_embeddings)
                scaling = overrides.get("rope_scaling", overrides.get("rope_parameters"))
                changes["rope_scaling"] = normalized_rope_scaling(scaling, max_positions)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--hf-overrides: {e}") from None
        return self.replace(**changes)


def matryoshka_fields(d: dict) -> dict:
    """is_matryoshka and matryoshka_dimensions from config.json (or --hf-overrides), as vLLM reads them; a list
    of dimensions implies the first."""
    fields: dict = {}
    if "matryoshka_dimensions" in d and d["matryoshka_dimensions"] is not None:
        fields["matryoshka_dimensions"] = tuple(int(x) for x in d["matryoshka_dimensions"])
        fields["is_matryoshka"] = True
    if "is_matryoshka" in d:
        fields["is_matryoshka"] = bool(d["is_matryoshka"]) or "matryoshka_dimensions" in fields
    return fields


def normalized_rope_scaling(scaling: dict | None, max_position_embeddings: int,
                            original_max_position_embeddings: int | None = None) -> dict | None:
    """`rope_type` spelt out (older configs say `type`, Phi-3's first ones `su` for longrope); none for the
    default rope; YaRN's and LongRoPE's original context filled in as transformers reads it (LongRoPE's from
    the config's top level, as Phi-3 writes it), and LongRoPE's factor: the context it stretches to over that."""
    if not scaling:
        return None
    if not isinstance(scaling, dict):
        raise ConfigError(f"rope scaling must be an object, not {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return None
    kind = "longrope" if kind == "su" else kind
    scaling = {key: value for key, value in scaling.items() if key not in ("type", "rope_theta")}
    scaling["rope_type"] = kind
    if kind == "yarn":
        scaling.setdefault("original_max_position_embeddings", max_position_embeddings)
    if kind == "longrope":
        scaling.setdefault("original_max_position_embeddings", original_max_position_embeddings or
                           max_position_embeddings)
        scaling.setdefault("factor", max_position_embeddings / scaling["original_max_position_embeddings"])
    return scaling


def _family_fields(arch: str, d: dict, rope_params: dict, local_rope: dict) -> dict:
    """The config.json fields only Gemma 2/3 and Phi-3 read."""
    if arch == "Phi3ForCausalLM":
        factor = d.get("partial_rotary_factor") or rope_params.get("partial_rotary_factor") or 1.0
        return {"partial_rotary_factor": float(factor)}
    if arch not in GEMMA_ARCHITECTURES:
        return {}
    num_layers = int(d["num_hidden_layers"])
    layer_types = d.get("layer_types")
    if layer_types is None:
        pattern = 2 if arch == "Gemma2ForCausalLM" else int(d.get("sliding_window_pattern") or 6)
        layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
    if len(layer_types) != num_layers or set(layer_types) - {"sliding_attention", "full_attention"}:
        raise ValueError(f"layer_types {layer_types!r}: one of sliding_attention / full_attention per layer")
    default_softcap = (50.0, 30.0) if arch == "Gemma2ForCausalLM" else (None, None)
    local_base = d.get("rope_local_base_freq") or local_rope.get("rope_theta")
    return {
        "layer_types": tuple(layer_types),
        "attn_logit_softcapping": _optional_float(d.get("attn_logit_softcapping", default_softcap[0])),
        "final_logit_softcapping": _optional_float(d.get("final_logit_softcapping", default_softcap[1])),
        "query_pre_attn_scalar": float(d.get("query_pre_attn_scalar") or 256),
        "rope_local_base_freq": float(local_base or 10000.0) if arch == "Gemma3ForCausalLM" else None,
    }


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def resolve_max_model_len(requested: int | None, model_config: ModelConfig, default_cap: int | None) -> int:
    """--max-model-len, or the model's limit (capped at `default_cap` when not given); more than the model
    allows is refused, not clamped: positions beyond it were never trained, and the answer would be garbage."""
    limit = model_config.max_model_len_limit
    if requested is None:
        return limit if default_cap is None else min(limit, default_cap)
    if requested > limit:
        raise ConfigError(
            f"--max-model-len {requested} is more than this model allows: {limit} (max_position_embeddings"
            f"{' stretched by its rope scaling' if limit != model_config.max_position_embeddings else ''}). "
            "To serve a longer context, scale its RoPE, e.g. --hf-overrides "
            f"'{{\"rope_scaling\": {{\"rope_type\": \"yarn\", \"factor\": {-(-requested // limit)}.0, "
            f"\"original_max_position_embeddings\": {model_config.max_position_embeddings}}}}}'")
    return requested


def default_cache_dir() -> str:
    return os.environ.get("CORTEXSTREAM_CACHE_DIR", os.path.expanduser("~/.cache/cortexstream"))


@dataclass
class EngineConfig:
    """The engine's settings. A field whose metadata has a "help" is also a command-line flag named after it
    (--max-model-len for max_model_len), with that help and the field's default: add a field, get a flag."""

    model: str | None = field(default=None, metadata={
        "help": "HF checkpoint directory or GGUF file (default: the embedded SmolLM2-135M-Instruct); with "
                "--load-format dummy, a config.json or a built-in shape (llama-3-8b, llama-3.2-1b)"})
    dtype: str = field(default="auto", metadata={
        "help": "weight and activation type; auto: float32 on CPU, bfloat16 on GPU",
        "choices": ("auto", "float32", "bfloat16", "float16")})
    load_format: str = field(default="auto", metadata={
        "help": "dummy: random weights of the model's shape, no checkpoint read", "choices": ("auto", "dummy")})
    max_model_len: int | None = field(default=None, metadata={
        "min": 1, "help": "longest prompt plus completion, in tokens (default: the model's, at most 2048 on CPU); "
                          "more than the model allows is refused"})
    hf_overrides: dict | None = field(default=None, metadata={
        "json": True, "help": "JSON of config.json values to use instead of the checkpoint's (rope_scaling, "
                              "rope_theta, max_position_embeddings, sliding_window, is_matryoshka, "
                              "matryoshka_dimensions), as vLLM's flag; e.g. YaRN for "
                              "twice the context: '{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0, "
                              "\"original_max_position_embeddings\": 8192}}'"})
    block_size: int = field(default=16, metadata={"power_of_two": True, "help": "tokens per KV-cache block (page)"})
    kv_cache_memory: float | None = field(default=None, metadata={
        "above": 0, "help": "KV cache size in GiB (default: 1 on CPU; on GPU, what --gpu-memory-utilization leaves)"})
    gpu_memory_utilization: float = field(default=0.85, metadata={
        "above": 0, "max": 1, "help": "fraction of GPU memory for weights, KV cache and activations"})
    max_num_seqs: int = field(default=32, metadata={"min": 1, "help": "most requests in one step"})
    max_num_batched_tokens: int = field(default=512, metadata={
        "min": 1, "help": "most tokens in one step, prefill chunks and decodes together"})
    enable_prefix_caching: bool = field(default=True, metadata={
        "help": "reuse the KV blocks of prompts' common prefixes"})
    compilation_cache_dir: str | None = field(
        default_factory=lambda: os.path.join(default_cache_dir(), "jax"),
        metadata={"help": "JAX's persistent compilation cache ('' turns it off)"})
    seed: int = field(default=0, metadata={"min": 0, "help": "seed of the random draws of requests that set none"})
    warmup: bool = field(default=True, metadata={"help": "compile every step shape at start-up"})
    batch_invariant: bool = field(default=False, metadata={
        "help": "fixed matmul and attention tiles, so a request's tokens never depend on what shares its batch "
                "(CPU: 1.4-2x slower)"})
    max_decode_slowdown: float = field(default=2.5, metadata={
        "min": 0, "help": "while requests decode, cut prefill chunks so a step's predicted time (learned from measured "
                "step times) stays under this many decode-only steps; 0: always --max-num-batched-tokens"})
    tensor_parallel_size: int = field(default=1, metadata={
        "min": 1, "help": "devices the model is split over (attention heads, MLP columns and rows, vocabulary)"})
    task: str = field(default="generate", metadata={
        "help": "generate: completions and chat; embed: /v1/embeddings from a pooling runner (prefill only, no KV "
                "kept after a request; vLLM's --task embed, --runner pooling in newer vLLM)",
        "choices": ("generate", "embed")})
    pooler_config: dict | None = field(default=None, metadata={
        "json": True, "help": "with --task embed, how hidden states become an embedding, as vLLM's flag: JSON "
                              "'{\"pooling_type\": \"LAST\" or \"MEAN\", \"normalize\": true or false}' (default "
                              "LAST, normalized; MEAN turns the prefix cache off)"})
    quantization: str = field(default="auto", metadata={
        "help": "int8: W8A8 matmuls (int8 weights per output channel, int8 activations per token, SmoothQuant "
                "calibrated at load); auto: int8 on CPU when the checkpoint itself is quantised (GGUF "
                "Q4/Q5/Q8/K-quants), else none", "choices": ("auto", "none", "int8")})
