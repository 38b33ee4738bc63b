import os

import openai
import pytest

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture(scope="session")
def tiny_llama_path():
    return os.path.join(GOLDEN, "llama")


@pytest.fixture(scope="session")
def smollm2_engine():
    from jax_engine.loader import default_model_path
    from tests.engine_utils import engine_for

    return engine_for(default_model_path(), max_model_len=512, max_num_batched_tokens=128, max_num_seqs=32,
                      kv_cache_memory=0.25)


@pytest.fixture(scope="module")
def server():
    """The session's shared default-model server (modules that need their own override this)."""
    from tests.server_fixture import shared_server

    return shared_server()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def tokenizer():
    from jax_engine.loader import default_model_path
    from jax_engine.tokenizer import Tokenizer

    return Tokenizer.from_gguf(default_model_path())
