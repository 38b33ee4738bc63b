"""Two processes as one engine (jax.distributed over localhost, gloo collectives on CPU): process 0 serves HTTP
and schedules, process 1 follows its steps, the tiny Llama split over one device in each (TP 2). The tokens are
transformers' (tests/golden), as one process gives them (tests/test_golden.py)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jax_engine.loader import load_checkpoint
from tests.server_fixture import REPO, TEST_COMPILATION_CACHE, TINY_LLAMA, ServerProcess, post_ok

ENGINE_ARGS = ("--model", TINY_LLAMA, "--tensor-parallel-size", "2", "--max-model-len", "128",
               "--kv-cache-memory", "0.01", "--quantization", "none", "--dtype", "float32", "--no-warmup",
               "--compilation-cache-dir", TEST_COMPILATION_CACHE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
    coordinator = f"127.0.0.1:{free_port()}"
    distributed = ("--coordinator-address", coordinator, "--num-processes", "2")
    log = tmp_path_factory.mktemp("multihost") / "process1.log"
    with open(log, "wb") as out:
        follower = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", *ENGINE_ARGS, *distributed,
                                     "--process-id", "1"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(*ENGINE_ARGS, *distributed, "--process-id", "0", env=env)
    try:
        yield server.start(timeout=240), follower, log
    finally:
        server.kill()
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_two_processes_generate_the_tokens_of_one(two_processes):
    server, follower, log = two_processes
    golden = np.load(os.path.join(TINY_LLAMA, "golden.npz"))
    tokenizer = load_checkpoint(TINY_LLAMA, with_weights=False).tokenizer
    for i in range(3):
        body = post_ok(server, "/v1/completions", {
            "model": "llama", "prompt": golden[f"prompt_{i}"].tolist(), "max_tokens": 8, "temperature": 0,
            "ignore_eos": True}, "CreateCompletionResponse")
        assert body["choices"][0]["text"] == tokenizer.decode(golden[f"greedy_tokens_{i}"].tolist())
    assert server.stop() == 0
    assert follower.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]


def test_num_processes_without_a_coordinator_is_refused(capsys):
    from gateway import cli

    assert cli.main(["serve", "--num-processes", "2"]) == 1
    assert "--num-processes > 1 needs --coordinator-address HOST:PORT" in capsys.readouterr().err
