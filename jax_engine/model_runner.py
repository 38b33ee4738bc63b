"""The jitted model step over a flat, padded ragged batch, plus on-device sampling."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from tqdm import tqdm

from jax_engine import buckets
from jax_engine.config import ModelConfig
from jax_engine.layers.linear import ROW_TILE
from jax_engine.models.llama import AttentionMetadata
from jax_engine.models.registry import model_class
from jax_engine.multihost import StepBroadcast, fetch, is_multihost_driver
from jax_engine.outputs import TokenLogprobs
from jax_engine.pooler import PoolerConfig, pool_chunks
from jax_engine.sampler import SamplerFlags, SamplingMetadata, sample
from jax_engine.sampling_params import MAX_LOGPROBS
from jax_engine.scheduler import SchedulerOutput
from jax_engine.sharding import TP, place_weights, replicated, tp_mesh, zeros_kv_cache
from jax_engine.structured_output import grammar_bitmask
from jax_engine.structured_output.bitmask import allow_all
from kernels.paged_attention import attention_backend
from kernels.paged_attention.xla import PAGES_PER_CHUNK

logger = logging.getLogger(__name__)

PREFILL_BLOCK_Q = 16  # query tokens per attention block in steps that carry a prefill


@dataclass
class ModelRunnerOutput:
    sampled: dict[str, tuple[int, TokenLogprobs | None]]  # request_id -> (token id, logprobs if asked)
    prompt_logprobs: dict[str, list[TokenLogprobs]]  # request_id -> logprobs of this step's next prompt tokens
    # pooling runner: request_id -> (first position of this step's chunk, its pooled row: last or sum)
    pooled: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)


@dataclass
class BatchInputs:
    token_ids: np.ndarray
    positions: np.ndarray
    md: AttentionMetadata
    logits_indices: np.ndarray
    num_seqs: int


def kv_cache_bytes_per_block(cfg: ModelConfig, block_size: int, dtype) -> int:
    return 2 * cfg.num_hidden_layers * block_size * cfg.num_key_value_heads * cfg.head_dim * jnp.dtype(dtype).itemsize


class ModelRunner:
    def __init__(self, cfg: ModelConfig, weights: dict, dtype, num_blocks: int, block_size: int,
                 max_model_len: int, max_num_seqs: int, max_num_batched_tokens: int,
                 batch_invariant: bool = False, pooler: PoolerConfig | None = None, mesh: Mesh | None = None):
        """`mesh`: the devices the model is split over (tensor parallelism), with weights and config already laid
        out for it (sharding.tensor_parallel_layout); default: the first device alone."""
        self.config = cfg
        self.mesh = mesh if mesh is not None else tp_mesh(jax.devices()[:1])
        self.tensor_parallel_size = self.mesh.shape[TP]
        self.pooler = pooler  # a pooling runner (--task embed): each step gives pooled rows, never logits
        self.dtype = dtype
        self.block_size = block_size
        self.max_num_seqs = max_num_seqs
        self.batch_invariant = batch_invariant
        self.seq_multiple = ROW_TILE if batch_invariant else 1
        self.token_buckets = buckets.token_buckets(max_num_batched_tokens, smallest=self.seq_multiple)
        self.block_table_width = buckets.round_up(-(-max_model_len // block_size), PAGES_PER_CHUNK)
        # Decode-shaped steps (one new token per sequence) take one-token query blocks on the XLA path; a
        # batch-invariant step uses one block shape whatever the batch, and Pallas picks its own tiles.
        self.decode_block_q = 1 if not batch_invariant and attention_backend() == "xla" else PREFILL_BLOCK_Q
        model = model_class(cfg)(cfg, place_weights(weights, dtype, self.mesh), batch_invariant=batch_invariant)
        self.graphdef, self.state = nnx.split(model)
        shape = (cfg.num_hidden_layers, num_blocks, block_size, cfg.num_key_value_heads, cfg.head_dim)
        self.k_cache = zeros_kv_cache(shape, dtype, self.mesh)
        self.v_cache = zeros_kv_cache(shape, dtype, self.mesh)
        self._forward = jax.jit(self._forward_impl if pooler is None else self._pooling_forward_impl,
                                donate_argnums=(1, 2))
        self._compiled_steps: dict[tuple[int, int], object] = {}  # (tokens, block_q) -> executable
        self._logits = jax.jit(self._logits_impl)
        self._prompt_logprobs = jax.jit(self._prompt_logprobs_impl)
        self.step_broadcast = StepBroadcast() if is_multihost_driver() else None
        self.prepare_s = 0.0  # host time building inputs, part of each execute
        self.grammar_s = 0.0  # host time computing grammar bitmasks, overlapped with the device step

    # ---- jitted bodies -------------------------------------------------------------------
    # The model reads the mesh (its tp size) while traced: split_fused and cached_attention shard by it.
    def _forward_impl(self, state, k_cache, v_cache, token_ids, positions, md, logits_indices):
        with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):
            model = nnx.merge(self.graphdef, state)
            hidden, k_cache, v_cache = model(token_ids, positions, k_cache, v_cache, md)
            return model.compute_logits(hidden[logits_indices]), hidden, k_cache, v_cache

    def _pooling_forward_impl(self, state, k_cache, v_cache, token_ids, positions, md, logits_indices):
        with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):
            hidden, k_cache, v_cache = nnx.merge(self.graphdef, state)(token_ids, positions, k_cache, v_cache, md)
        assert self.pooler is not None
        return pool_chunks(hidden, md.query_start_loc, logits_indices, self.pooler.pooling_type), k_cache, v_cache

    def _logits_impl(self, state, hidden):
        with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):
            return nnx.merge(self.graphdef, state).compute_logits(hidden)

    def _prompt_logprobs_impl(self, state, hidden, next_token_ids):
        with jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh):
            logits = nnx.merge(self.graphdef, state).compute_logits(hidden)
        logprobs = jax.nn.log_softmax(logits, axis=-1)
        chosen = jnp.take_along_axis(logprobs, next_token_ids[:, None], axis=-1)[:, 0]
        top_lp, top_ids = jax.lax.top_k(logprobs, MAX_LOGPROBS)
        return chosen, top_ids, top_lp

    # ---- host side -----------------------------------------------------------------------
    def prepare_inputs(self, out: SchedulerOutput) -> BatchInputs:
        num_tokens = buckets.pick(self.token_buckets, out.num_tokens)
        num_seqs = buckets.seqs_for_tokens(num_tokens, self.max_num_seqs, self.seq_multiple)
        decode = all(s.num_new_tokens == 1 for s in out.scheduled)
        token_ids = np.zeros(num_tokens, np.int32)
        positions = np.zeros(num_tokens, np.int32)
        slot_mapping = np.full(num_tokens, -1, np.int32)
        query_start_loc = np.full(num_seqs + 1, out.num_tokens, np.int32)
        context_lens = np.zeros(num_seqs, np.int32)
        block_tables = np.zeros((num_seqs, self.block_table_width), np.int32)
        logits_indices = np.zeros(num_seqs, np.int32)
        start = 0
        for i, s in enumerate(out.scheduled):
            req, n = s.request, s.num_new_tokens
            first, end = req.num_computed_tokens, req.num_computed_tokens + n
            pos = np.arange(first, end, dtype=np.int32)
            table = np.asarray(req.block_table, np.int32)
            token_ids[start:start + n] = req.token_slice(first, end)
            positions[start:start + n] = pos
            slot_mapping[start:start + n] = table[pos // self.block_size] * self.block_size + pos % self.block_size
            query_start_loc[i] = start
            context_lens[i] = end
            block_tables[i, :len(table)] = table
            start += n
            logits_indices[i] = start - 1
        md = AttentionMetadata(slot_mapping, block_tables, context_lens, query_start_loc,
                               block_q=self.decode_block_q if decode else PREFILL_BLOCK_Q)
        return BatchInputs(token_ids, positions, md, logits_indices, num_seqs)

    def execute(self, out: SchedulerOutput) -> ModelRunnerOutput:
        t0 = time.perf_counter()
        batch = self.prepare_inputs(out)
        self.prepare_s += time.perf_counter() - t0
        if self.pooler is not None:
            step = self._compiled_steps.get((len(batch.token_ids), batch.md.block_q), self._forward)
            return self._execute_pooling(out, step, batch)
        self._device_op("forward", batch)
        samplers = [(i, s.request) for i, s in enumerate(out.scheduled) if s.samples]
        bitmask = self._grammar_bitmask(samplers, batch.num_seqs)  # the forward is dispatched, not done
        prompt_logprobs = self._collect_prompt_logprobs(out, batch.token_ids.shape[0])
        if samplers:
            sampled = self._sample(samplers, batch.num_seqs, bitmask)
        else:  # a prefill chunk: wait for it here, so the step's measured time is its own, not the next one's
            sampled = {}
            jax.block_until_ready(self._step_logits)
        return ModelRunnerOutput(sampled, prompt_logprobs)

    # ---- device ops: what every process of a multi-host run executes, in the same order ----------------------
    def _device_op(self, op: str, *args):
        """Run one device op; in a multi-host run process 0 first sends it to the others (multihost.py)."""
        if self.step_broadcast is not None:
            self.step_broadcast.send(op, args)
        return getattr(self, op)(*args)

    def forward(self, batch: BatchInputs) -> None:
        step = self._compiled_steps.get((len(batch.token_ids), batch.md.block_q), self._forward)
        token_ids, positions, md, logits_indices = self._global(
            (batch.token_ids, batch.positions, batch.md, batch.logits_indices))
        self._step_logits, self._step_hidden, self.k_cache, self.v_cache = step(
            self.state, self.k_cache, self.v_cache, token_ids, positions, md, logits_indices)

    def sample_step(self, md: SamplingMetadata, flags: SamplerFlags):
        return fetch(sample(self._step_logits, self._global(md), flags))

    def prompt_logprobs_step(self, next_token_ids: np.ndarray):
        return fetch(self._prompt_logprobs(self.state, self._step_hidden, self._global(next_token_ids)))

    def _global(self, tree):
        """Host inputs as the mesh's arrays when it spans processes (one process: jit places them itself)."""
        return tree if jax.process_count() == 1 else replicated(tree, self.mesh)

    def close(self) -> None:
        """Let the other processes of a multi-host run go."""
        if self.step_broadcast is not None:
            self.step_broadcast.stop()
            self.step_broadcast = None
    def _execute_pooling(self, out: SchedulerOutput, step, batch: BatchInputs) -> ModelRunnerOutput:
        pooled, self.k_cache, self.v_cache = step(self.state, self.k_cache, self.v_cache, batch.token_ids,
                                                  batch.positions, batch.md, batch.logits_indices)
        rows = np.asarray(jax.device_get(pooled))
        return ModelRunnerOutput({}, {}, {s.request.request_id: (s.request.num_computed_tokens, rows[i])
                                          for i, s in enumerate(out.scheduled)})

    def _grammar_bitmask(self, samplers, num_seqs: int) -> np.ndarray | None:
        rows = [(i, req.grammar) for i, req in samplers if req.grammar is not None]
        if not rows:
            return None
        t0 = time.perf_counter()
        bitmask = grammar_bitmask(rows, num_seqs, self.config.vocab_size)
        self.grammar_s += time.perf_counter() - t0
        return bitmask

    def _sample(self, samplers, num_seqs, bitmask=None) -> dict:
        md, flags = sampling_metadata(samplers, num_seqs, self.config.vocab_size, bitmask)
        ids, chosen, top_ids, top_lp = self._device_op("sample_step", md, flags)
        result = {}
        for i, req in samplers:
            lp = None
            if req.sampling_params.logprobs is not None:
                k = req.sampling_params.logprobs
                lp = TokenLogprobs(int(ids[i]), float(chosen[i]),
                                   list(zip(top_ids[i, :k].tolist(), top_lp[i, :k].tolist(), strict=True)))
            result[req.request_id] = (int(ids[i]), lp)
        return result

    def _collect_prompt_logprobs(self, out: SchedulerOutput, num_tokens: int) -> dict[str, list[TokenLogprobs]]:
        """Logprobs of the prompt positions this step computes past those already collected: after a
        preemption the recompute's chunks need not start where the list ends."""
        spans, start = {}, 0
        next_ids = np.zeros(num_tokens, np.int32)
        for s in out.scheduled:
            req, first = s.request, s.request.num_computed_tokens
            have = len(req.prompt_logprobs)
            last = min(first + s.num_new_tokens, req.num_prompt_tokens - 1)
            if req.sampling_params.prompt_logprobs is not None and first <= have < last:
                at = start + have - first
                next_ids[at:at + last - have] = req.prompt_token_ids[have + 1:last + 1]
                spans[req.request_id] = (at, last - have, req.sampling_params.prompt_logprobs)
            start += s.num_new_tokens
        if not spans:
            return {}
        chosen, top_ids, top_lp = self._device_op("prompt_logprobs_step", next_ids)
        return {rid: [TokenLogprobs(int(next_ids[j]), float(chosen[j]),
                                    list(zip(top_ids[j, :k].tolist(), top_lp[j, :k].tolist(), strict=True)))
                      for j in range(a, a + n)]
                for rid, (a, n, k) in spans.items()}

    def warmup(self) -> float:
        """Compile (ahead of time, without running) every step shape, and the samplers."""
        start = time.perf_counter()
        # a one-token step is always decode-shaped
        shapes = [(t, PREFILL_BLOCK_Q) for t in self.token_buckets if t > 1 or self.decode_block_q == PREFILL_BLOCK_Q]
        if self.decode_block_q != PREFILL_BLOCK_Q:
            shapes += [(t, self.decode_block_q) for t in self.token_buckets if t <= self.max_num_seqs]
        warmed: set[int] = set()
        for num_tokens, block_q in tqdm(shapes, desc="Compiling model step", unit="shape"):
            num_seqs = buckets.seqs_for_tokens(num_tokens, self.max_num_seqs, self.seq_multiple)
            md = AttentionMetadata(np.full(num_tokens, -1, np.int32),
                                   np.zeros((num_seqs, self.block_table_width), np.int32),
                                   np.zeros(num_seqs, np.int32), np.zeros(num_seqs + 1, np.int32), block_q=block_q)
            tokens = np.zeros(num_tokens, np.int32)
            lowered = self._forward.lower(self.state, self.k_cache, self.v_cache, tokens, tokens, md,
                                          np.zeros(num_seqs, np.int32))
            self._compiled_steps[(num_tokens, block_q)] = lowered.compile()
            if num_seqs not in warmed and self.pooler is None:
                self._warm_samplers(num_seqs)
                warmed.add(num_seqs)
        return time.perf_counter() - start

    def _warm_samplers(self, num_seqs: int) -> None:
        logits = np.zeros((num_seqs, self.config.vocab_size), np.float32)
        for bitmask in (None, allow_all(num_seqs, self.config.vocab_size)):
            smd, _ = sampling_metadata([], num_seqs, self.config.vocab_size, bitmask)
            for all_greedy in (True, False):
                jax.block_until_ready(sample(logits, smd, SamplerFlags(all_greedy, grammar=bitmask is not None)))


def sampling_metadata(samplers, num_seqs: int, vocab_size: int,
                      grammar_bitmask: np.ndarray | None = None) -> tuple[SamplingMetadata, SamplerFlags]:
    """Per-row sampling arrays for the requests that sample this step; other rows are greedy padding.
    grammar_bitmask: [num_seqs, ceil(V/32)] for steps where some request has a grammar, else None."""
    temperature = np.zeros(num_seqs, np.float32)
    top_k = np.zeros(num_seqs, np.int32)
    top_p = np.ones(num_seqs, np.float32)
    min_p = np.zeros(num_seqs, np.float32)
    seeds = np.zeros(num_seqs, np.uint32)
    steps = np.zeros(num_seqs, np.int32)
    presence = np.zeros(num_seqs, np.float32)
    frequency = np.zeros(num_seqs, np.float32)
    repetition = np.ones(num_seqs, np.float32)
    biases = {}
    for i, req in samplers:
        p = req.sampling_params
        temperature[i], top_k[i], top_p[i], min_p[i] = p.temperature, min(p.top_k, vocab_size), p.top_p, p.min_p
        seeds[i], steps[i] = req.seed, req.num_output_tokens
        presence[i], frequency[i], repetition[i] = p.presence_penalty, p.frequency_penalty, p.repetition_penalty
        bias = request_logit_bias(req)
        if bias:
            biases[i] = bias
    params = [req.sampling_params for _, req in samplers]
    flags = SamplerFlags(
        all_greedy=all(p.greedy for p in params),
        penalties=any(p.needs_penalties for p in params),
        logit_bias=bool(biases),
        filters=any(p.needs_filters for p in params),
        logprobs=any(p.logprobs is not None for p in params),
        grammar=grammar_bitmask is not None,
    )
    bias_ids = bias_values = prompt_ids = output_ids = None
    if flags.logit_bias:
        bias_ids, bias_values = pad_bias(biases, num_seqs, vocab_size)
    if flags.penalties:
        prompt_ids = pad_rows({i: r.prompt_token_ids for i, r in samplers}, num_seqs)
        output_ids = pad_rows({i: r.output_token_ids for i, r in samplers}, num_seqs)
    md = SamplingMetadata(temperature, top_k, top_p, min_p, seeds, steps, presence, frequency, repetition,
                          bias_ids, bias_values, prompt_ids, output_ids, grammar_bitmask)
    return md, flags


def request_logit_bias(req) -> dict[int, float]:
    """The user's logit_bias, plus a ban on stop tokens until min_tokens are out."""
    p = req.sampling_params
    bias = dict(p.logit_bias or {})
    if req.num_output_tokens < p.min_tokens:
        for t in [*req.eos_token_ids, *p.stop_token_ids]:
            bias[t] = -float("inf")
    return bias


def pad_bias(biases: dict[int, dict[int, float]], num_seqs: int, vocab_size: int):
    width = max(8, 1 << (max(len(b) for b in biases.values()) - 1).bit_length())
    ids = np.full((num_seqs, width), vocab_size, np.int32)
    values = np.zeros((num_seqs, width), np.float32)
    for i, b in biases.items():
        ids[i, :len(b)] = list(b.keys())
        values[i, :len(b)] = list(b.values())
    return ids, values


def pad_rows(rows: dict[int, list[int]], num_seqs: int) -> np.ndarray:
    width = max(8, 1 << (max(len(r) for r in rows.values()) - 1).bit_length()) if rows else 8
    out = np.full((num_seqs, width), -1, np.int32)
    for i, r in rows.items():
        out[i, :len(r)] = r
    return out
