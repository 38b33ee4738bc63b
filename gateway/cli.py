"""The `cortexstream` command: serve, generate, bench throughput, bench serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gateway.engine_args import add_engine_arguments, check_engine_args, engine_config

EXIT_LOAD_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cortexstream", description="OpenAI-compatible inference over JAX")
    sub = parser.add_subparsers(dest="command", required=True)

    from gateway import generate
    p = sub.add_parser("generate", help="one-shot generation printed to stdout")
    generate.add_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(warmup=False, handler=generate.run)

    try:
        from gateway import server
    except ImportError:
        server = None
    if server is not None:
        p = sub.add_parser("serve", help="run the OpenAI-compatible HTTP server")
        server.add_arguments(p)
        add_engine_arguments(p)
        p.set_defaults(handler=server.run)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    from gateway.bench import throughput
    p = bench.add_parser("throughput", help="offline throughput through the engine")
    throughput.add_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(handler=throughput.run)
    try:
        from gateway.bench import serve as bench_serve
    except ImportError:
        bench_serve = None
    if bench_serve is not None:
        p = bench.add_parser("serve", help="online benchmark against an OpenAI-compatible server")
        bench_serve.add_arguments(p)
        p.set_defaults(handler=bench_serve.run, engine=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=os.environ.get("CORTEXSTREAM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    from jax_engine.loader import LoadError
    try:
        if getattr(args, "engine", True) is False:
            return args.handler(args) or 0
        problem = check_engine_args(args)
        if problem is not None:
            parser.error(problem)
        return args.handler(args, engine_config(args)) or 0
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOAD_FAILED


if __name__ == "__main__":
    sys.exit(main())
