"""Which data-parallel replica to send a prompt to: the one most likely to hold its longest cached prefix.

The router remembers the block hashes (the block manager's chain hash) of the prompts it sent each replica, a
bounded table per replica with the least recently used out first: an estimate of each replica's prefix cache,
kept without asking the replicas anything. A prompt goes to the replica matching most of its leading blocks;
with no match anywhere (or a tie), to the least loaded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from jax_engine.block_manager import chain_hash


def block_hashes(token_ids: Sequence[int], block_size: int) -> list[int]:
    """The chain hashes of the full blocks a prefix-cache lookup could hit (the last token is always computed)."""
    hashes, parent = [], None
    for i in range((len(token_ids) - 1) // block_size):
        parent = chain_hash(parent, tuple(token_ids[i * block_size:(i + 1) * block_size]))
        hashes.append(parent)
    return hashes


class PrefixRouter:
    def __init__(self, num_replicas: int, block_size: int, blocks_per_replica: int):
        self.block_size = block_size
        self.capacity = blocks_per_replica
        self.tables: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(num_replicas)]

    def route(self, prompt_token_ids: Sequence[int], loads: Sequence[int]) -> int:
        """The replica for this prompt, given each replica's load (requests in flight); remembers the choice."""
        hashes = block_hashes(prompt_token_ids, self.block_size)
        matched = [self._matched_blocks(table, hashes) for table in self.tables]
        best = max(matched)
        candidates = [i for i, m in enumerate(matched) if m == best]
        choice = min(candidates, key=lambda i: (loads[i], i))
        self._remember(self.tables[choice], hashes)
        return choice

    @staticmethod
    def _matched_blocks(table: OrderedDict[int, None], hashes: list[int]) -> int:
        for n, h in enumerate(hashes):
            if h not in table:
                return n
        return len(hashes)

    def _remember(self, table: OrderedDict[int, None], hashes: list[int]) -> None:
        for h in hashes:
            table[h] = None
            table.move_to_end(h)
        while len(table) > self.capacity:
            table.popitem(last=False)
