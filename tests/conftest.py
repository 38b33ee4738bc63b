import os

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
