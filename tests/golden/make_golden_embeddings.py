"""Write the embedding goldens: tests/golden/qwen3_embed/ and its embeddings.npz, pooled from what HF
transformers' AutoModel computes.

qwen3_embed is tests/golden/qwen3's weights saved as the base model, as Qwen3-Embedding checkpoints may be:
architecture Qwen3Model, tensors named without the "model." prefix, no lm_head, `is_matryoshka` in its config,
and a tokenizer whose post-processor ends every input with <|endoftext|>. The pooling is sentence-transformers'
(and Qwen3-Embedding's reference code's): a right-padded batch with its attention mask, the last real token's
hidden state or the masked mean, truncated to `dimensions` first and L2-normalized last.

make_golden.py runs it after writing tests/golden/qwen3; alone, from the repository root:

    HF_HUB_OFFLINE=1 .golden-venv/bin/python tests/golden/make_golden_embeddings.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer, processors  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

GOLDEN = Path(__file__).resolve().parent
SOURCE = GOLDEN / "qwen3"
TARGET = GOLDEN / "qwen3_embed"
SUFFIX_TOKEN = "<|endoftext|>"
MATRYOSHKA_DIMENSIONS = 16
# Short and long (the longest spans several 16-token KV blocks and prefill chunks), words the tokenizer knows
# and words it does not.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A tiny model reads a tiny text.",
    "Each request has a prompt, a number of computed tokens, a block table and a slot mapping. The scheduler "
    "admits waiting requests under a token budget and gives running ones their decode slot.",
    "Zebras quietly juxtapose vexing kumquats!",
    "server",
]


def write_checkpoint() -> None:
    shutil.rmtree(TARGET, ignore_errors=True)
    TARGET.mkdir()
    base = AutoModel.from_pretrained(SOURCE, dtype=torch.float32, attn_implementation="eager")
    assert type(base).__name__ == "Qwen3Model", type(base)
    base.save_pretrained(TARGET)
    config = json.loads((SOURCE / "config.json").read_text())
    config.update(architectures=["Qwen3Model"], is_matryoshka=True)
    (TARGET / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("generation_config.json", "tokenizer_config.json"):
        shutil.copy(SOURCE / name, TARGET / name)
    tokenizer = Tokenizer.from_file(str(SOURCE / "tokenizer.json"))
    suffix_id = tokenizer.token_to_id(SUFFIX_TOKEN)
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"$A {SUFFIX_TOKEN}", pair=f"$A {SUFFIX_TOKEN} $B:1 {SUFFIX_TOKEN}:1",
                                      special_tokens=[(SUFFIX_TOKEN, suffix_id)]),
    ])
    tokenizer.save(str(TARGET / "tokenizer.json"))
    with safe_open(str(TARGET / "model.safetensors"), framework="np") as f:
        names = list(f.keys())
    assert "embed_tokens.weight" in names and not any(n.startswith(("model.", "lm_head")) for n in names), names


def normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, p=2, dim=-1)


@torch.no_grad()
def embedding_arrays() -> dict[str, np.ndarray]:
    tokenizer = AutoTokenizer.from_pretrained(TARGET)
    model = AutoModel.from_pretrained(TARGET, dtype=torch.float32, attn_implementation="eager").eval()
    batch = tokenizer(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"]
    lengths = mask.sum(dim=1)
    last = hidden[torch.arange(len(TEXTS)), lengths - 1]
    mean = (hidden * mask[..., None]).sum(dim=1) / lengths[:, None]
    arrays: dict[str, np.ndarray] = {}
    for i, text in enumerate(TEXTS):
        ids = batch["input_ids"][i, : lengths[i]]
        assert ids[-1] == tokenizer.convert_tokens_to_ids(SUFFIX_TOKEN)
        alone = model(input_ids=ids[None]).last_hidden_state[0]  # the padded batch changed nothing
        torch.testing.assert_close(alone[-1], last[i], atol=1e-5, rtol=0)
        arrays[f"text_{i}"] = np.array(text)
        arrays[f"input_ids_{i}"] = ids.numpy().astype(np.int32)
        arrays[f"last_raw_{i}"] = last[i].numpy()
        arrays[f"last_{i}"] = normalize(last[i]).numpy()
        arrays[f"mean_{i}"] = normalize(mean[i]).numpy()
        arrays[f"last_dim{MATRYOSHKA_DIMENSIONS}_{i}"] = normalize(last[i][:MATRYOSHKA_DIMENSIONS]).numpy()
    return arrays


def main() -> None:
    torch.manual_seed(0)
    write_checkpoint()
    arrays = embedding_arrays()
    np.savez_compressed(TARGET / "embeddings.npz", **arrays)
    lengths = [len(arrays[f"input_ids_{i}"]) for i in range(len(TEXTS))]
    print(f"  {(TARGET / 'embeddings.npz').relative_to(GOLDEN)}: {len(TEXTS)} inputs of {lengths} tokens")


if __name__ == "__main__":
    main()
