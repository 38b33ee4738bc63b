"""Paged KV cache bookkeeping with automatic prefix caching.

Every full block carries a hash chained over its parent's hash and its token ids, so a
prefix match is a walk of dict look-ups. Blocks whose last user finished keep their hash
and stay in the free queue, reusable until evicted in least-recently-freed order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from jax_engine.request import Request


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    block_hash: int | None = None
    token_ids: tuple[int, ...] = field(default_factory=tuple)


def chain_hash(parent_hash: int | None, token_ids: tuple[int, ...]) -> int:
    return hash((parent_hash, token_ids))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_block_ids: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))
        self.hash_to_block_id: dict[int, int] = {}
        self.num_queries = 0
        self.num_hits = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_block_ids)

    @property
    def usage(self) -> float:
        return 1.0 - self.num_free_blocks / self.num_blocks

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def get_computed_blocks(self, req: Request) -> list[int]:
        """Cached blocks holding a prefix of the request's tokens; one token is always left to compute."""
        if not self.enable_prefix_caching or req.sampling_params.prompt_logprobs is not None:
            return []
        hits, parent = [], None
        num_full = (req.num_tokens - 1) // self.block_size
        for i in range(num_full):
            tokens = tuple(req.token_slice(i * self.block_size, (i + 1) * self.block_size))
            block_id = self.hash_to_block_id.get(chain_hash(parent, tokens))
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            hits.append(block_id)
            parent = self.blocks[block_id].block_hash
        self.num_queries += req.num_prompt_tokens
        self.num_hits += min(len(hits) * self.block_size, req.num_prompt_tokens)
        return hits

    def allocate_slots(self, req: Request, num_new_tokens: int, computed_blocks: list[int] = ()) -> bool:
        """Give the request blocks for its next num_new_tokens; False (and no change) if they don't fit."""
        reusable_free = sum(1 for b in computed_blocks if self.blocks[b].ref_count == 0)
        total = req.num_computed_tokens + len(computed_blocks) * self.block_size + num_new_tokens
        num_new_blocks = max(0, self.blocks_needed(total) - len(req.block_table) - len(computed_blocks))
        if num_new_blocks + reusable_free > self.num_free_blocks:
            return False
        for block_id in computed_blocks:
            self._touch(block_id)
            req.block_table.append(block_id)
            req.block_hashes.append(self.blocks[block_id].block_hash)
        for _ in range(num_new_blocks):
            req.block_table.append(self._allocate_block())
        return True

    def cache_full_blocks(self, req: Request, num_computed_tokens: int) -> None:
        """Register the hashes of blocks that became full once num_computed_tokens are computed."""
        if not self.enable_prefix_caching:
            return
        for i in range(len(req.block_hashes), num_computed_tokens // self.block_size):
            tokens = tuple(req.token_slice(i * self.block_size, (i + 1) * self.block_size))
            parent = req.block_hashes[-1] if req.block_hashes else None
            block_hash = chain_hash(parent, tokens)
            block = self.blocks[req.block_table[i]]
            if block.block_hash is None:
                block.block_hash, block.token_ids = block_hash, tokens
                self.hash_to_block_id.setdefault(block_hash, block.block_id)
            req.block_hashes.append(block_hash)

    def free(self, req: Request) -> None:
        """Release every block the request holds; tail blocks go first in the eviction order."""
        for block_id in reversed(req.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free_block_ids[block_id] = None
        req.block_table = []
        req.block_hashes = []

    def reset_prefix_cache(self) -> None:
        for block_id in self.free_block_ids:
            self._forget(self.blocks[block_id])

    def _touch(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self.free_block_ids[block_id]
        block.ref_count += 1

    def _allocate_block(self) -> int:
        block_id, _ = self.free_block_ids.popitem(last=False)
        block = self.blocks[block_id]
        self._forget(block)
        block.ref_count = 1
        return block_id

    def _forget(self, block: Block) -> None:
        if block.block_hash is not None and self.hash_to_block_id.get(block.block_hash) == block.block_id:
            del self.hash_to_block_id[block.block_hash]
        block.block_hash, block.token_ids = None, ()
