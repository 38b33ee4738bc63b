"""The `cortexstream` command: serve, generate, bench throughput, bench serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gateway import generate, server
from gateway.bench import serve as bench_serve
from gateway.bench import throughput
from gateway.engine_args import add_engine_arguments, check_engine_args, engine_config

EXIT_LOAD_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cortexstream", description="OpenAI-compatible inference over JAX")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "serve", "run the OpenAI-compatible HTTP server")
    server.add_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(handler=server.run)

    p = _command(sub, "generate", "one-shot generation printed to stdout")
    generate.add_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(warmup=False, handler=generate.run)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = _command(bench, "throughput", "offline throughput through the engine")
    throughput.add_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(handler=throughput.run)
    p = _command(bench, "serve", "online benchmark against an OpenAI-compatible server")
    bench_serve.add_arguments(p)
    p.set_defaults(handler=bench_serve.run, engine=False)
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default, as `vllm serve --help` shows them, unless its help says what unset means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=_DefaultsFormatter)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=os.environ.get("CORTEXSTREAM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    from jax_engine.config import ConfigError
    from jax_engine.loader import LoadError
    try:
        if getattr(args, "engine", True) is False:
            return args.handler(args) or 0
        problem = check_engine_args(args)
        if problem is None and args.command != "serve" and args.task == "embed":
            problem = "--task embed is served by `cortexstream serve` (POST /v1/embeddings)"
        if problem is not None:
            parser.error(problem)
        return args.handler(args, engine_config(args)) or 0
    except (LoadError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOAD_FAILED


if __name__ == "__main__":
    sys.exit(main())
