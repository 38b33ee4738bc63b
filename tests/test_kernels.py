"""Ragged paged attention: reference vs a dense numpy oracle, Pallas kernel (interpret) vs reference,
CUDA lowering of the kernel, backend dispatch, query-block mapping and write_kv."""

import functools
import importlib
import zlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.paged_attention import pallas_attention, write_kv, write_kv_layer
from kernels.paged_attention.query_blocks import num_query_blocks, query_blocks, token_slots
from kernels.paged_attention.reference import ragged_paged_attention
from kernels.paged_attention.xla import xla_paged_attention

pa = importlib.import_module("kernels.paged_attention")  # `kernels` re-exports a function of that name
reference_attention = jax.jit(ragged_paged_attention,
                              static_argnames=("sm_scale", "sliding_window", "soft_cap"))
xla_attention = jax.jit(xla_paged_attention, static_argnames=(
    "layer", "sm_scale", "sliding_window", "soft_cap", "block_q", "pages_per_chunk", "batch_invariant"))


@pytest.fixture(autouse=True)
def exact_float32_matmuls():
    """On GPU, XLA's default f32 matmul is TF32; the oracles here must be exact."""
    with jax.default_matmul_precision("highest"):
        yield


@dataclass(frozen=True)
class Case:
    """A ragged batch: sequence s brings q_lens[s] new tokens, the last of its context_lens[s]."""

    q_lens: tuple
    context_lens: tuple
    num_q_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 64
    page_size: int = 16
    dtype: str = "float32"
    sliding_window: int | None = None
    soft_cap: float | None = None
    pad_tokens: int = 0  # padding tokens past query_start_loc[-1]
    pad_seqs: int = 0  # padded sequences: context 0, no tokens
    knobs: tuple = ()  # Pallas tiling overrides, e.g. (("num_splits", 2),)

    @property
    def attention_options(self):
        return dict(sliding_window=self.sliding_window, soft_cap=self.soft_cap)


@dataclass
class Batch:
    q: jax.Array
    k_pages: jax.Array
    v_pages: jax.Array
    block_tables: jax.Array
    context_lens: jax.Array
    query_start_loc: jax.Array
    unused_slots: np.ndarray  # flat cache slots no sequence's context covers

    @property
    def args(self):
        return (self.q, self.k_pages, self.v_pages, self.block_tables, self.context_lens,
                self.query_start_loc)


def make_batch(case: Case, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    q_lens = list(case.q_lens) + [0] * case.pad_seqs
    context_lens = list(case.context_lens) + [0] * case.pad_seqs
    pages_per_seq = max(1, -(-max(context_lens) // case.page_size)) + 1
    num_seqs = len(q_lens)
    num_pages = num_seqs * pages_per_seq + 3
    num_tokens = sum(q_lens) + case.pad_tokens
    dtype = jnp.dtype(case.dtype)
    kv_shape = (num_pages, case.page_size, case.num_kv_heads, case.head_dim)
    block_tables = rng.permutation(num_pages)[: num_seqs * pages_per_seq].reshape(num_seqs, pages_per_seq)
    used = np.zeros(num_pages * case.page_size, bool)
    for s, n in enumerate(context_lens):
        pages, offsets = np.divmod(np.arange(n), case.page_size)
        used[block_tables[s, pages] * case.page_size + offsets] = True
    return Batch(
        q=jnp.asarray(rng.standard_normal((num_tokens, case.num_q_heads, case.head_dim)), dtype),
        k_pages=jnp.asarray(rng.standard_normal(kv_shape), dtype),
        v_pages=jnp.asarray(rng.standard_normal(kv_shape), dtype),
        block_tables=jnp.asarray(block_tables, jnp.int32),
        context_lens=jnp.asarray(context_lens, jnp.int32),
        query_start_loc=jnp.asarray(np.concatenate([[0], np.cumsum(q_lens)]), jnp.int32),
        unused_slots=np.flatnonzero(~used),
    )


def poison_unused(pages, unused_slots):
    """NaN in every cache slot outside the contexts: a kernel that reads one returns NaN."""
    flat = np.array(pages).reshape(-1, *pages.shape[2:])
    flat[unused_slots] = np.nan
    return jnp.asarray(flat.reshape(pages.shape))


def dense_attention(batch: Batch, sm_scale=None, sliding_window=None, soft_cap=None):
    """Float64 numpy oracle: gather each sequence's context, then causal softmax token by token."""
    f64 = lambda x: np.asarray(jnp.asarray(x, jnp.float32), np.float64)
    q, k_pages, v_pages = f64(batch.q), f64(batch.k_pages), f64(batch.v_pages)
    num_pages, page_size, num_kv_heads, head_dim = k_pages.shape
    group = q.shape[1] // num_kv_heads
    scale = sm_scale if sm_scale is not None else head_dim ** -0.5
    qsl, ctx, tables = map(np.asarray, (batch.query_start_loc, batch.context_lens, batch.block_tables))
    out = np.zeros_like(q)
    for s in range(len(ctx)):
        positions = np.arange(ctx[s])
        slots = tables[s, positions // page_size] * page_size + positions % page_size
        k = k_pages.reshape(-1, num_kv_heads, head_dim)[slots]
        v = v_pages.reshape(-1, num_kv_heads, head_dim)[slots]
        num_new = qsl[s + 1] - qsl[s]
        for i in range(num_new):
            t, pos = qsl[s] + i, ctx[s] - num_new + i
            visible = positions <= pos
            if sliding_window is not None:
                visible &= positions > pos - sliding_window
            for h in range(q.shape[1]):
                logits = k[:, h // group] @ q[t, h] * scale
                if soft_cap is not None:
                    logits = soft_cap * np.tanh(logits / soft_cap)
                w = np.where(visible, np.exp(logits - logits[visible].max()), 0.0)
                out[t, h] = w @ v[:, h // group] / w.sum()
    return out


def tolerance(dtype):
    return 2e-5 if jnp.dtype(dtype) == jnp.float32 else 3e-2


def assert_close(actual, expected, dtype):
    actual = np.asarray(jnp.asarray(actual, jnp.float32))
    assert np.isfinite(actual).all()
    np.testing.assert_allclose(actual, np.asarray(expected, np.float32), atol=tolerance(dtype), rtol=0)


# --- the reference against the dense oracle ---------------------------------------------------------

REFERENCE_CASES = {
    "mixed_gqa": Case((1, 0, 13, 30, 1), (40, 9, 13, 64, 1), num_q_heads=8, num_kv_heads=2, pad_tokens=5),
    "sliding_window": Case((20, 1), (50, 33), num_q_heads=6, num_kv_heads=2, sliding_window=7),
    "soft_cap": Case((5, 1, 17), (5, 70, 17), num_q_heads=4, num_kv_heads=1, soft_cap=2.0, page_size=32),
    "window_and_cap_bf16": Case((9, 1), (40, 23), dtype="bfloat16", sliding_window=16, soft_cap=5.0),
    "multi_tile": Case((1,) * 24 + (9,), (5,) * 24 + (30,), num_q_heads=2, num_kv_heads=2, pad_tokens=7),
}


@pytest.mark.parametrize("name", REFERENCE_CASES)
def test_reference_matches_dense_attention(name):
    case = REFERENCE_CASES[name]
    batch = make_batch(case, seed=1)
    out = reference_attention(*batch.args, **case.attention_options)
    assert out.shape == batch.q.shape and out.dtype == batch.q.dtype
    assert_close(out, dense_attention(batch, **case.attention_options), case.dtype)


def test_reference_zeroes_padding_tokens():
    case = Case((3, 2), (3, 10), pad_tokens=4, pad_seqs=2)
    out = np.asarray(reference_attention(*make_batch(case).args))
    assert (out[5:] == 0).all()


def test_reference_respects_sm_scale():
    batch = make_batch(Case((4, 1), (4, 20)), seed=2)
    assert_close(reference_attention(*batch.args, sm_scale=0.3), dense_attention(batch, sm_scale=0.3),
                 "float32")


# --- the Pallas kernel (interpret mode) against the reference ----------------------------------------

# A pairwise cover of {decode, prefill, mixed} x GQA group {1, 3, 4, 8} x page size {16, 32} x head_dim
# {64, 128} x {f32, bf16} x {-, window, cap, both}, with contexts off page boundaries, empty and
# single-token sequences, padding, and the tiling knobs (several splits, tiny query blocks).
KERNEL_CASES = {
    "decode_g1": Case((1,) * 5, (1, 17, 33, 100, 64), num_q_heads=2, num_kv_heads=2),
    "decode_g4_cap_splits": Case((1,) * 4, (3, 40, 129, 16), num_q_heads=8, num_kv_heads=2, head_dim=128,
                                 page_size=32, dtype="bfloat16", soft_cap=10.0, knobs=(("num_splits", 4),)),
    "decode_g8_window_splits3": Case((1,) * 3, (90, 7, 61), num_q_heads=8, num_kv_heads=1, head_dim=128,
                                     sliding_window=20, knobs=(("num_splits", 3), ("block_k", 16))),
    "decode_g3_padded": Case((1,) * 3, (31, 1, 50), num_q_heads=6, num_kv_heads=2, page_size=32,
                             dtype="bfloat16", sliding_window=9, soft_cap=3.0, pad_tokens=3, pad_seqs=2),
    "prefill_g1": Case((37,), (37,), num_q_heads=2, num_kv_heads=2, head_dim=128, page_size=32,
                       dtype="bfloat16"),
    "prefill_g3_cap": Case((20, 1, 45), (20, 1, 45), num_q_heads=3, num_kv_heads=1, soft_cap=4.0),
    "chunked_prefill_g4_window": Case((16, 33), (50, 97), num_q_heads=8, num_kv_heads=2, sliding_window=24,
                                      knobs=(("block_q", 4), ("num_splits", 2))),
    "prefill_g8_small_window": Case((40,), (40,), num_q_heads=8, num_kv_heads=1, page_size=32,
                                    dtype="bfloat16", sliding_window=8),
    "mixed_g4": Case((1, 0, 13, 1, 30, 1), (40, 9, 13, 77, 64, 1), num_q_heads=8, num_kv_heads=2,
                     head_dim=128, pad_tokens=12, pad_seqs=2),
    "mixed_g1_window_cap": Case((1, 22, 1), (35, 22, 2), num_q_heads=2, num_kv_heads=2, page_size=32,
                                dtype="bfloat16", sliding_window=16, soft_cap=5.0, pad_tokens=4),
    "mixed_g3_splits": Case((7, 1, 1), (7, 45, 80), num_q_heads=6, num_kv_heads=2, head_dim=128,
                            dtype="bfloat16", knobs=(("num_splits", 2),)),
    "mixed_g8_cap_tiny_blocks": Case((1, 11), (19, 60), num_q_heads=8, num_kv_heads=1, head_dim=128,
                                     page_size=32, soft_cap=30.0, knobs=(("block_q", 2),)),
    "mixed_head_dim_96": Case((1, 6), (33, 6), num_q_heads=4, num_kv_heads=1, head_dim=96),
}


@pytest.mark.parametrize("name", KERNEL_CASES)
def test_pallas_interpret_matches_reference(name):
    case = KERNEL_CASES[name]
    batch = make_batch(case, seed=zlib.crc32(name.encode()))
    expected = reference_attention(*batch.args, **case.attention_options)
    k_poisoned = poison_unused(batch.k_pages, batch.unused_slots)
    v_poisoned = poison_unused(batch.v_pages, batch.unused_slots)
    out = pallas_attention(batch.q, k_poisoned, v_poisoned, *batch.args[3:], **case.attention_options,
                           **dict(case.knobs), interpret=True)
    assert out.shape == batch.q.shape and out.dtype == batch.q.dtype
    assert_close(out, expected, case.dtype)
    num_real = int(batch.query_start_loc[-1])
    assert (np.asarray(out[num_real:], np.float32) == 0).all()


@pytest.mark.parametrize("knobs", [dict(block_q=3), dict(block_q=1), dict(block_k=24), dict(block_k=8)])
def test_pallas_rejects_tiles_triton_cannot_build(knobs):
    batch = make_batch(Case((1, 5), (20, 5), num_q_heads=8, num_kv_heads=2))
    with pytest.raises(ValueError, match="powers of two"):
        pallas_attention(*batch.args, interpret=True, **knobs)


# --- the chunked XLA path (the CPU default) against the reference -------------------------------------

def pad_block_tables(batch: Batch, multiple: int) -> jax.Array:
    """The XLA path walks the table in chunks of pages: its width must be a multiple of the chunk."""
    tables = np.asarray(batch.block_tables)
    width = -(-tables.shape[1] // multiple) * multiple
    return jnp.asarray(np.pad(tables, ((0, 0), (0, width - tables.shape[1]))), jnp.int32)


@pytest.mark.parametrize("name", KERNEL_CASES)
@pytest.mark.parametrize("block_q,pages_per_chunk,batch_invariant", [(16, 2, False), (1, 1, False), (4, 3, True)])
def test_xla_path_matches_reference(name, block_q, pages_per_chunk, batch_invariant):
    case = KERNEL_CASES[name]
    batch = make_batch(case, seed=zlib.crc32(name.encode()))
    expected = reference_attention(*batch.args, **case.attention_options)
    k_poisoned = poison_unused(batch.k_pages, batch.unused_slots)
    v_poisoned = poison_unused(batch.v_pages, batch.unused_slots)
    out = xla_attention(batch.q, k_poisoned, v_poisoned, pad_block_tables(batch, pages_per_chunk),
                        *batch.args[4:], **case.attention_options, block_q=block_q,
                        pages_per_chunk=pages_per_chunk, batch_invariant=batch_invariant)
    assert out.shape == batch.q.shape and out.dtype == batch.q.dtype
    assert_close(out, expected, case.dtype)
    num_real = int(batch.query_start_loc[-1])
    assert (np.asarray(out[num_real:], np.float32) == 0).all()


def test_xla_path_reads_the_stacked_cache_by_layer():
    batch = make_batch(KERNEL_CASES["mixed_g4"], seed=3)
    expected = reference_attention(*batch.args)
    stacked = lambda pages: jnp.stack([jnp.full_like(pages, jnp.nan), pages, jnp.full_like(pages, jnp.nan)])
    out = xla_attention(batch.q, stacked(batch.k_pages), stacked(batch.v_pages), pad_block_tables(batch, 4),
                        *batch.args[4:], layer=1, pages_per_chunk=4)
    assert_close(out, expected, "float32")


def test_xla_path_is_batch_invariant_in_that_mode():
    """A sequence's rows are bit-identical alone and beside others when blocks run one at a time."""
    case = Case((1, 13, 1, 30), (40, 13, 77, 64), num_q_heads=8, num_kv_heads=2)
    batch = make_batch(case, seed=5)
    tables = pad_block_tables(batch, 2)
    together = xla_attention(batch.q, batch.k_pages, batch.v_pages, tables, *batch.args[4:], pages_per_chunk=2,
                             batch_invariant=True)
    start, end = int(batch.query_start_loc[3]), int(batch.query_start_loc[4])
    alone = xla_attention(batch.q[start:end], batch.k_pages, batch.v_pages, tables[3:4], batch.context_lens[3:4],
                          jnp.asarray([0, end - start], jnp.int32), pages_per_chunk=2, batch_invariant=True)
    np.testing.assert_array_equal(np.asarray(together[start:end]), np.asarray(alone))


# --- CUDA lowering on this host ---------------------------------------------------------------------

def lowering_args(dtype, num_tokens, num_seqs, num_q_heads=32, num_kv_heads=8, head_dim=128):
    kv = jax.ShapeDtypeStruct((512, 16, num_kv_heads, head_dim), dtype)
    return (jax.ShapeDtypeStruct((num_tokens, num_q_heads, head_dim), dtype), kv, kv,
            jax.ShapeDtypeStruct((num_seqs, 64), jnp.int32), jax.ShapeDtypeStruct((num_seqs,), jnp.int32),
            jax.ShapeDtypeStruct((num_seqs + 1,), jnp.int32))


@pytest.fixture
def verified_triton_modules(monkeypatch):
    """Run the MLIR verifier on every Triton module the Pallas lowering builds (None: JAX moved it)."""
    from jax._src.pallas.triton import lowering as triton_lowering

    build = getattr(triton_lowering, "lower_jaxpr_to_triton_module", None)
    if build is None:
        return None
    verified = []

    def build_and_verify(*args, **kwargs):
        result = build(*args, **kwargs)
        verified.append(result.module.operation.verify())
        return result

    monkeypatch.setattr(triton_lowering, "lower_jaxpr_to_triton_module", build_and_verify)
    return verified


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [
    dict(num_tokens=64, num_seqs=64),  # decode: split-K and the combine
    dict(num_tokens=512, num_seqs=4),  # prefill: one split, normalised in the kernel
    dict(num_tokens=96, num_seqs=8, num_q_heads=12, num_kv_heads=4, head_dim=80),  # group 3, padded head_dim
])
def test_pallas_lowers_for_cuda(dtype, shape, verified_triton_modules):
    f = functools.partial(pallas_attention, sm_scale=0.1, sliding_window=256, soft_cap=30.0)
    lowered = jax.jit(f).trace(*lowering_args(jnp.dtype(dtype), **shape)).lower(lowering_platforms=("cuda",))
    assert "triton" in lowered.as_text()
    assert verified_triton_modules is None or (verified_triton_modules and all(verified_triton_modules))


def test_pallas_lowering_without_window_or_cap(verified_triton_modules):
    lowered = jax.jit(pallas_attention).trace(*lowering_args(jnp.bfloat16, 32, 32)).lower(
        lowering_platforms=("cuda",))
    assert "triton" in lowered.as_text()
    assert verified_triton_modules is None or (verified_triton_modules and all(verified_triton_modules))


# --- the kernel on a real GPU (skipped elsewhere) ---------------------------------------------------

@pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU")
@pytest.mark.parametrize("name", KERNEL_CASES)
def test_pallas_on_gpu_matches_reference(name):
    case = KERNEL_CASES[name]
    batch = make_batch(case, seed=7)
    expected = reference_attention(*batch.args, **case.attention_options)
    k_poisoned = poison_unused(batch.k_pages, batch.unused_slots)
    v_poisoned = poison_unused(batch.v_pages, batch.unused_slots)
    out = pallas_attention(batch.q, k_poisoned, v_poisoned, *batch.args[3:], **case.attention_options,
                           **dict(case.knobs))
    assert_close(out, expected, case.dtype)


# --- dispatch -----------------------------------------------------------------------------------------

def test_backend_defaults_to_xla_off_gpu(monkeypatch):
    monkeypatch.delenv(pa.ATTENTION_ENV_VAR, raising=False)
    expected = "pallas" if jax.default_backend() == "gpu" else "xla"
    assert pa.attention_backend() == expected


@pytest.mark.parametrize("forced", ["pallas", "xla", "reference", " Pallas "])
def test_backend_env_var_forces_choice(monkeypatch, forced):
    monkeypatch.setenv(pa.ATTENTION_ENV_VAR, forced)
    assert pa.attention_backend() == forced.strip().lower()


def test_backend_env_var_rejects_unknown(monkeypatch):
    monkeypatch.setenv(pa.ATTENTION_ENV_VAR, "flash")
    with pytest.raises(ValueError, match="CORTEXSTREAM_ATTENTION"):
        pa.attention_backend()


def test_forced_pallas_runs_kernel_and_matches_reference(monkeypatch):
    calls = []
    kernel = pa.pallas_attention
    monkeypatch.setattr(pa, "pallas_attention", lambda *a, **k: calls.append(k) or kernel(*a, **k))
    monkeypatch.setenv(pa.ATTENTION_ENV_VAR, "pallas")
    batch = make_batch(Case((1, 5), (20, 5)), seed=3)
    out = pa.paged_attention(*batch.args, sm_scale=0.2)
    assert len(calls) == 1
    assert_close(out, reference_attention(*batch.args, sm_scale=0.2), "float32")


# --- query blocks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("q_lens,block_q", [
    ((5, 5, 5, 5), 4),  # every sequence one token past a block boundary
    ((1, 0, 9, 0, 16, 3), 4),
    ((1,) * 7, 8),
    ((33,), 16),
])
def test_query_blocks_cover_every_token_once(q_lens, block_q):
    num_tokens, num_seqs = sum(q_lens) + 3, len(q_lens)
    qsl = jnp.asarray(np.concatenate([[0], np.cumsum(q_lens)]), jnp.int32)
    ctx = jnp.asarray(q_lens, jnp.int32) + 10
    num_blocks = num_query_blocks(num_tokens, num_seqs, block_q)
    assert num_blocks >= sum(-(-n // block_q) for n in q_lens)
    blocks = jax.tree.map(np.asarray, query_blocks(qsl, ctx, num_blocks=num_blocks, block_q=block_q))
    slots = jax.tree.map(np.asarray, token_slots(qsl, num_tokens, block_q))
    qsl, ctx = np.asarray(qsl), np.asarray(ctx)
    covered = [blocks.token_start[b] + r for b in range(num_blocks) for r in range(blocks.num_tokens[b])]
    assert sorted(covered) == list(range(sum(q_lens)))
    for t in range(sum(q_lens)):
        b, r = int(slots.block_ids[t]), int(slots.rows[t])
        assert bool(slots.valid[t]) and int(blocks.token_start[b]) + r == t and r < int(blocks.num_tokens[b])
        s = int(blocks.seq_ids[b])
        assert int(blocks.first_position[b]) + r == int(ctx[s]) - int(qsl[s + 1]) + t
    assert not np.asarray(slots.valid[sum(q_lens):]).any()


def test_query_blocks_window_bounds_keys():
    qsl, ctx = jnp.asarray([0, 4], jnp.int32), jnp.asarray([30], jnp.int32)
    blocks = query_blocks(qsl, ctx, num_blocks=2, block_q=2, sliding_window=5)
    assert np.asarray(blocks.kv_start).tolist() == [22, 24]  # first positions 26, 28 minus window - 1
    assert np.asarray(blocks.kv_end).tolist() == [28, 30]


# --- write_kv -------------------------------------------------------------------------------------------

def test_write_kv_scatters_to_slots_and_drops_padding():
    rng = np.random.default_rng(4)
    k_pages = jnp.asarray(rng.standard_normal((4, 8, 2, 16)), jnp.float32)
    v_pages = jnp.asarray(rng.standard_normal((4, 8, 2, 16)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((4, 2, 16)), jnp.float32)
    v = jnp.asarray(rng.standard_normal((4, 2, 16)), jnp.float32)
    slot_mapping = jnp.asarray([9, 31, -1, 0], jnp.int32)
    new_k, new_v = write_kv(k_pages, v_pages, k, v, slot_mapping)
    expected_k, expected_v = np.array(k_pages), np.array(v_pages)
    for t, slot in enumerate([9, 31, None, 0]):
        if slot is not None:
            expected_k[slot // 8, slot % 8] = k[t]
            expected_v[slot // 8, slot % 8] = v[t]
    np.testing.assert_array_equal(new_k, expected_k)
    np.testing.assert_array_equal(new_v, expected_v)


def test_write_kv_casts_to_cache_dtype():
    pages = jnp.zeros((2, 4, 1, 8), jnp.bfloat16)
    k = jnp.full((1, 1, 8), 1.5, jnp.float32)
    new_k, _ = write_kv(pages, pages, k, k, jnp.asarray([5], jnp.int32))
    assert new_k.dtype == jnp.bfloat16 and float(new_k[1, 1, 0, 0]) == 1.5


# --- stacked [L, ...] caches read in place through `layer` ------------------------------------------------

def stacked(pages, num_layers, layer, rng):
    """pages placed at `layer` of an [L, ...] cache whose other layers are noise."""
    noise = rng.standard_normal((num_layers, *pages.shape)).astype(np.float32)
    noise[layer] = np.asarray(pages, np.float32)
    return jnp.asarray(noise, pages.dtype)


@pytest.mark.parametrize("impl", ["reference", "pallas"])
def test_stacked_cache_with_layer_index_matches_single_layer(impl):
    case = Case((1, 7, 1), (40, 7, 17), num_q_heads=6, num_kv_heads=2)
    batch = make_batch(case, seed=11)
    rng = np.random.default_rng(12)
    expected = reference_attention(*batch.args)
    k_all, v_all = stacked(batch.k_pages, 3, 1, rng), stacked(batch.v_pages, 3, 1, rng)
    fn = reference_attention if impl == "reference" else functools.partial(pallas_attention, interpret=True)
    out = jax.jit(lambda layer: fn(batch.q, k_all, v_all, *batch.args[3:], layer=layer))(jnp.int32(1))
    assert_close(out, expected, case.dtype)


def test_write_kv_layer_writes_only_its_layer():
    rng = np.random.default_rng(5)
    cache = jnp.asarray(rng.standard_normal((3, 4, 8, 2, 16)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 2, 16)), jnp.float32)
    slot_mapping = jnp.asarray([9, -1, 31], jnp.int32)
    new_k, new_v = write_kv_layer(cache, cache, 2, k, k, slot_mapping)
    expected = np.array(cache)
    expected[2, 1, 1], expected[2, 3, 7] = k[0], k[2]
    np.testing.assert_array_equal(new_k, expected)
    np.testing.assert_array_equal(new_v, expected)
