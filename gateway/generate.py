"""`cortexstream generate`: one-shot generation that streams the text to stdout."""

from __future__ import annotations

import sys
import time

from compat.chat_template import ChatTemplate
from jax_engine.llm_engine import LLMEngine
from jax_engine.sampling_params import SamplingParams


def add_arguments(p) -> None:
    p.add_argument("prompt", help="the text to continue (or, with --chat, the user message)")
    p.add_argument("--max-tokens", type=int, default=64, help="most tokens to generate")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user message in the chat template")
    p.set_defaults(warmup=False)


def prompt_ids(engine, prompt: str, chat: bool) -> list[int]:
    tok = engine.tokenizer
    if not chat:
        return tok.encode(prompt)
    template = ChatTemplate(tok.chat_template, {"bos_token": tok.bos_token or "", "eos_token": tok.eos_token or ""})
    text = template.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return tok.encode(text, add_special_tokens=False)


def run(args, config) -> int:
    t0 = time.perf_counter()
    engine = LLMEngine.from_config(config)
    load_s = time.perf_counter() - t0
    ids = prompt_ids(engine, args.prompt, args.chat)
    engine.add_request("generate", ids, SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens))
    start, n = time.perf_counter(), 0
    first = start
    while engine.has_unfinished_requests():
        for out in engine.step():
            if n == 0:
                first = time.perf_counter()
            n += len(out.new_token_ids)
            sys.stdout.write(out.new_text)
            sys.stdout.flush()
    end = time.perf_counter()
    sys.stdout.write("\n")
    decode_rate = (n - 1) / (end - first) if n > 1 else 0.0
    print(f"[load {load_s:.1f} s, first token {1000 * (first - start):.0f} ms, {n} tokens, "
          f"decode {decode_rate:.1f} tok/s]", file=sys.stderr)
    return 0
