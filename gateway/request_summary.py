"""What one HTTP request's engine requests came to, across its prompts and samples: token counts for `usage`,
and the access log's line (TTFT, TPOT, prompt/cached/output tokens, finish reasons) from the engine's timings."""

from __future__ import annotations

from dataclasses import dataclass

from compat import usage
from jax_engine import RequestOutput


@dataclass
class _Sample:
    tokens: int = 0
    first_token_ns: int = 0
    last_token_ns: int = 0


class RequestSummary:
    def __init__(self, count_completion: bool = True):
        self.count_completion = count_completion  # False: generation only served the echo (max_tokens 0)
        self._prompt: dict[int, int] = {}  # prompt position -> tokens
        self._cached: dict[int, int] = {}
        self._samples: dict[tuple[int, int], _Sample] = {}  # (prompt position, sample index)
        self._arrival_ns = 0
        self._finish_reasons: list[str] = []

    def add(self, position: int, out: RequestOutput) -> None:
        self._prompt[position] = out.num_prompt_tokens
        if out.index == 0:
            self._cached[position] = out.num_cached_tokens
        self._arrival_ns = min(self._arrival_ns or out.timing.arrival_ns, out.timing.arrival_ns)
        sample = self._samples.setdefault((position, out.index), _Sample())
        sample.tokens = out.num_output_tokens
        sample.first_token_ns, sample.last_token_ns = out.timing.first_token_ns, out.timing.last_token_ns
        if out.finish_reason is not None and out.finish_reason not in self._finish_reasons:
            self._finish_reasons.append(out.finish_reason)

    def usage(self) -> dict:
        completion = sum(s.tokens for s in self._samples.values()) if self.count_completion else 0
        return usage(sum(self._prompt.values()), completion, sum(self._cached.values()))

    def log_fields(self) -> str:
        u = self.usage()
        fields = (f"prompt_tokens={u['prompt_tokens']} cached_tokens={sum(self._cached.values())} "
                  f"output_tokens={u['completion_tokens']}")
        started = [s for s in self._samples.values() if s.first_token_ns]
        if started:
            ttft = min(s.first_token_ns for s in started) - self._arrival_ns
            fields += f" ttft_ms={ttft / 1e6:.1f}"
        decode_ns = sum(s.last_token_ns - s.first_token_ns for s in started)
        decoded = sum(s.tokens - 1 for s in started)
        if decoded > 0:
            fields += f" tpot_ms={decode_ns / decoded / 1e6:.1f}"
        return fields + f" finish_reason={','.join(self._finish_reasons) or '-'}"
