"""Run real agent CLIs for one turn each against `cortexstream serve` and write their transcripts.

    python scripts/agent_clients.py                      # both, the default model at 32k context (YaRN x4)
    python scripts/agent_clients.py --clients codex --max-model-len 16384 --yarn-factor 2

Codex CLI (npm @openai/codex) speaks only the Responses API: it gets a provider with `wire_api = "responses"`.
Claude Code (npm @anthropic-ai/claude-code) speaks the Messages API: it gets ANTHROPIC_BASE_URL and the served
model name for every model slot it would otherwise pick. Both are installed with npm into --cli-dir (a scratch
directory, never the repository) and run with HOME/CODEX_HOME in scratch directories too. Their first requests
carry long system prompts and tool definitions (Codex ~6.5k tokens, Claude Code ~20k with this model's
tokenizer), beyond the default model's 8192 positions: the server is started with YaRN over --hf-overrides.

The model is tiny: the transcripts show the protocol working (requests served, streams parsed, one turn
finished), not good answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "SmolLM2-135M-Instruct"
PACKAGES = {"codex": "@openai/codex", "claude": "@anthropic-ai/claude-code"}
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")
ACCESS = re.compile(r'gateway\.access: .*"(?:POST|GET|HEAD|DELETE) ')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", nargs="+", choices=sorted(PACKAGES), default=sorted(PACKAGES, reverse=True))
    p.add_argument("--prompt", default="Reply with one short sentence: what is 2+2?")
    p.add_argument("--max-model-len", type=int, default=32768)
    p.add_argument("--yarn-factor", type=float, default=4.0)
    p.add_argument("--kv-cache-memory", type=float, default=2.0, help="GiB")
    p.add_argument("--claude-max-output-tokens", type=int, default=64,
                   help="CLAUDE_CODE_MAX_OUTPUT_TOKENS: the tiny model rarely stops by itself, and Claude Code "
                        "asks for 32000 and then for continuations")
    p.add_argument("--compilation-cache-dir", default=None)
    p.add_argument("--cli-dir", default=os.path.join(tempfile.gettempdir(), "cortexstream-agent-clis"))
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per client")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "agent_clients.md"))
    p.add_argument("--append", action="store_true", help="add to --output instead of replacing it")
    return p.parse_args()


def install_clis(cli_dir: Path, clients: list[str]) -> dict[str, Path]:
    bins = {name: cli_dir / "node_modules" / ".bin" / name for name in clients}
    missing = [PACKAGES[name] for name, path in bins.items() if not path.exists()]
    if missing:
        cli_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(cli_dir), *missing], check=True)
    return bins


class Server:
    def __init__(self, args: argparse.Namespace, log_path: Path):
        self.overrides = {"rope_scaling": {"rope_type": "yarn", "factor": args.yarn_factor,
                                           "original_max_position_embeddings": 8192}}
        cache = ["--compilation-cache-dir", args.compilation_cache_dir] if args.compilation_cache_dir else []
        self.flags = [*cache, "--max-model-len", str(args.max_model_len), "--kv-cache-memory",
                      str(args.kv_cache_memory), "--hf-overrides", json.dumps(self.overrides)]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 900.0) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "CORTEXSTREAM_LOG_LEVEL": "DEBUG"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", *self.flags], cwd=REPO, env=env,
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            match = LISTENING.search(self.log())
            if match and not self.url:
                self.url = f"http://{match.group(1)}:{match.group(2)}"
            if self.url and _healthy(self.url):
                return
            time.sleep(2)
        raise RuntimeError(f"the server did not come up:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


def codex_run(binary: Path, server: Server, args: argparse.Namespace, scratch: Path) -> tuple[list[str], dict]:
    home = scratch / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\nmodel_provider = "cortexstream"\n\n[model_providers.cortexstream]\n'
        f'name = "CortexStream"\nbase_url = "{server.url}/v1"\nwire_api = "responses"\n'
        "stream_idle_timeout_ms = 7200000\nrequest_max_retries = 0\nstream_max_retries = 0\n")
    command = [str(binary), "exec", "--skip-git-repo-check", args.prompt]
    return command, {"CODEX_HOME": str(home)}


def claude_run(binary: Path, server: Server, args: argparse.Namespace, scratch: Path) -> tuple[list[str], dict]:
    models = {f"ANTHROPIC_{slot}": MODEL for slot in (
        "MODEL", "SMALL_FAST_MODEL", "DEFAULT_HAIKU_MODEL", "DEFAULT_SONNET_MODEL", "DEFAULT_OPUS_MODEL")}
    env = {"HOME": str(scratch / "claude-home"), "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-local",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "API_TIMEOUT_MS": "7200000", "CLAUDE_STREAM_IDLE_TIMEOUT_MS": "7200000",
           "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(args.claude_max_output_tokens), **models}
    command = [str(binary), "-p", args.prompt, "--max-turns", "1", "--output-format", "stream-json", "--verbose"]
    return command, env


RUNNERS = {"codex": codex_run, "claude": claude_run}


def run_client(name: str, binary: Path, server: Server, args: argparse.Namespace) -> str:
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix=f"agent-{name}-") as scratch:
        workdir = Path(scratch) / "work"
        workdir.mkdir()
        command, env = RUNNERS[name](binary, server, args, Path(scratch))
        log_start = len(server.log())
        start = time.monotonic()
        proc = subprocess.run(command, cwd=workdir, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=args.timeout)
        seconds = time.monotonic() - start
    served = [line for line in server.log()[log_start:].splitlines() if ACCESS.search(line) or "ignoring" in line]
    shown = " ".join(command[:1] + [f"'{c}'" if " " in c else c for c in command[1:]]).replace(str(binary), name)
    return "\n".join([
        f"## {name} ({version})", "",
        f"`{shown}` — exit {proc.returncode} after {seconds:.0f} s", "",
        "Server access log during the run:", "", "```", *served, "```", "",
        "Client output (stdout, then stderr):", "", "```", proc.stdout.rstrip(), "--- stderr ---",
        proc.stderr.rstrip(), "```", ""])


def main() -> int:
    args = parse_args()
    bins = install_clis(Path(args.cli_dir), args.clients)
    with tempfile.TemporaryDirectory(prefix="agent-server-") as scratch:
        server = Server(args, Path(scratch) / "serve.log")
        server.start()
        try:
            sections = [run_client(name, bins[name], server, args) for name in args.clients]
        finally:
            server.stop()
    head = [f"# Agent CLIs against cortexstream serve ({time.strftime('%Y-%m-%d')})", "",
            f"Server: `cortexstream serve {' '.join(server.flags[:-1])} '{server.flags[-1]}'` (default model "
            f"{MODEL}, CPU). Prompt: {args.prompt!r}. Judge the protocol, not the answers.", ""]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([*head, *sections])
    if args.append and output.exists():
        text = output.read_text() + "\n" + text
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    shutil.which("npm") or sys.exit("npm is needed to install the agent CLIs")
    sys.exit(main())
