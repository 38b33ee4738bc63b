"""A model that cannot be loaded gives one clear line naming the file and the problem."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from jax_engine.loader import LoadError, load_checkpoint

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(os.path.join(GOLDEN, "llama"), path)
    return path


def load_error(path) -> str:
    with pytest.raises(LoadError) as e:
        load_checkpoint(str(path))
    message = str(e.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path):
    assert "no such file or directory" in load_error(tmp_path / "nope")


def test_missing_config(checkpoint):
    os.remove(checkpoint / "config.json")
    message = load_error(checkpoint)
    assert "config.json" in message and "not found" in message


def test_corrupt_config(checkpoint):
    (checkpoint / "config.json").write_text("{not json")
    assert "config.json: not valid JSON" in load_error(checkpoint)


def test_unsupported_architecture_names_it_and_the_supported_list(checkpoint):
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (checkpoint / "config.json").write_text(json.dumps(cfg))
    message = load_error(checkpoint)
    assert "GPT2LMHeadModel" in message and "LlamaForCausalLM" in message and "Qwen3ForCausalLM" in message


def test_truncated_safetensors(checkpoint):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    message = load_error(checkpoint)
    assert "model.safetensors" in message and "corrupt or truncated" in message


def test_shape_mismatch_names_the_weight(checkpoint):
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["intermediate_size"] = cfg["intermediate_size"] * 2
    (checkpoint / "config.json").write_text(json.dumps(cfg))
    message = load_error(checkpoint)
    assert "gate_up_proj" in message and "expected" in message


def test_missing_shard_named_in_index(tmp_path):
    path = tmp_path / "qwen2"
    shutil.copytree(os.path.join(GOLDEN, "qwen2"), path)
    shard = sorted(p for p in os.listdir(path) if p.endswith(".safetensors"))[0]
    os.remove(path / shard)
    assert shard in load_error(path)


def test_truncated_gguf(tmp_path):
    data = open(os.path.join(GOLDEN, "gguf", "llama_q8_0.gguf"), "rb").read()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: len(data) // 2])
    message = load_error(path)
    assert "cut.gguf" in message


def test_not_a_gguf(tmp_path):
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"definitely not a gguf file" * 10)
    assert "junk.gguf" in load_error(path)


def test_cli_reports_the_error_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "generate", "hi", "--model", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no such file or directory" in proc.stderr


def test_gguf_header_reader_matches_gguf_library():
    import gguf

    from jax_engine.loader.gguf_file import read_gguf_header

    path = os.path.join(GOLDEN, "gguf", "llama_q4_0.gguf")
    ours, reader = read_gguf_header(path), gguf.GGUFReader(path)
    assert ours.metadata == {key: f.contents() for key, f in reader.fields.items() if not key.startswith("GGUF.")}
    assert [(t.name, t.shape, t.ggml_type) for t in ours.tensors] == [
        (t.name, tuple(int(n) for n in t.shape), int(t.tensor_type)) for t in reader.tensors]
