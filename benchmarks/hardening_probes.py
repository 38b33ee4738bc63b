"""Hostile and unlucky clients against a real `cortexstream serve` on localhost (issue 11's probes).

Starts the server itself (from --repo, so an older checkout can be measured the same way), runs each probe
with a bound on its time, and prints one Markdown table row per probe: what was sent, what came back, how
long it took, the server's open file descriptors and how many log lines it wrote meanwhile.

    python benchmarks/hardening_probes.py [--repo PATH] [--only NAME ...]

Everything stays on 127.0.0.1. Some probes need flags only newer servers have; they are passed when
`serve --help` lists them.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parents[1]
ENGINE_ARGS = ["--max-model-len", "1024", "--max-num-batched-tokens", "256", "--max-num-seqs", "16",
               "--kv-cache-memory", "0.25", "--compilation-cache-dir", "/tmp/cortexstream-test-jax-cache"]
KEY = "probe-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
SOFT_NOFILE = 1024  # the common default soft limit, which the issue's machine had


class Server:
    def __init__(self, repo: Path, *args: str, nofile: int = SOFT_NOFILE):
        self.repo, self.args, self.nofile = repo, args, nofile
        self.log_path = Path(tempfile.mkstemp(prefix="probe-serve-", suffix=".log")[1])
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 600) -> Server:
        def limit() -> None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(self.nofile, hard), hard))

        env = {**os.environ, "PYTHONPATH": str(self.repo), "HF_HUB_OFFLINE": "1"}
        env.pop("CORTEXSTREAM_API_KEY", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--api-key", KEY, *ENGINE_ARGS,
                 *self.args], cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            match = re.search(r"listening on http://[\d.]+:(\d+)", self.log())
            if match and "ready" in self.log():
                self.port = int(match.group(1))
                if health(self.port, 2.0) == 200:
                    return self
            time.sleep(0.3)
        raise RuntimeError(f"server did not come up:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> int:
        with open(self.log_path, "rb") as f:
            return sum(1 for _ in f)

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return -1

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def health(port: int, timeout: float) -> int | str:
    try:
        return call(port, "GET", "/health", timeout=timeout)[0]
    except OSError as e:
        return type(e).__name__


def call(port: int, method: str, path: str, body=None, headers=None, timeout: float = 120.0):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = orjson.dumps(body) if isinstance(body, dict) else body
        connection.request(method, path, body=data, headers={**AUTH, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def raw(port: int, payload: bytes, wait: float = 3.0) -> bytes:
    """Send bytes, read what comes back until the server closes or `wait` passes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.settimeout(wait)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def status_line(reply: bytes) -> str:
    if not reply:
        return "nothing"
    head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    content_type = next((h.split(":", 1)[1].strip() for h in head if h.lower().startswith("content-type")), "")
    return f"{head[0].split(' ', 2)[1]} {content_type}".strip()


def seconds_until_closed(port: int, prefix: bytes = b"", drip: bytes = b"", bound: float = 20.0) -> str:
    """Open a connection, send `prefix`, then `drip` one byte a second; how long until the server closes."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(prefix)
        s.settimeout(1.0)
        reply, i = b"", 0
        while time.monotonic() - start < bound:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    return f"closed after {time.monotonic() - start:.1f} s ({status_line(reply)})"
                reply += chunk
            except TimeoutError:
                pass
            except ConnectionResetError:
                return f"reset after {time.monotonic() - start:.1f} s"
            if drip:
                try:
                    s.sendall(drip[i % len(drip):i % len(drip) + 1])
                except OSError:
                    return f"closed after {time.monotonic() - start:.1f} s (send failed)"
                i += 1
        return f"still open after {bound:.0f} s ({status_line(reply)})"


# ---- probes -------------------------------------------------------------------------------------------------

RECURSIVE = {"$defs": {"n": {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}, "required": ["c"]}},
             "$ref": "#/$defs/n"}
WIDE = {"anyOf": [{"type": "object", "properties": {f"k{i}": {"type": "integer"}}, "required": [f"k{i}"]}
                  for i in range(3000)]}
USER = [{"role": "user", "content": "Call the tool."}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}}


def probe_grammar(server: Server) -> list[tuple[str, str]]:
    cases = {
        "recursive $ref response_format": {"messages": USER, "max_tokens": 8, "response_format": {
            "type": "json_schema", "json_schema": {"name": "n", "schema": RECURSIVE}}},
        "tool parameters {$ref: #}, required": {"messages": USER, "max_tokens": 8, "tools": [TOOL],
                                                 "tool_choice": "required"},
        "anyOf of 3,000 objects": {"messages": USER, "max_tokens": 8, "response_format": {
            "type": "json_schema", "json_schema": {"name": "w", "schema": WIDE}}},
    }
    rows = []
    for name, body in cases.items():
        for stream in (False, True):
            status, _, reply = call(server.port, "POST", "/v1/chat/completions", {**body, "stream": stream})
            error = orjson.loads(reply).get("error", {}) if status != 200 else {}
            param = error.get("param")
            rows.append((f"grammar: {name}, stream={stream}", f"{status} param={param}"))
    return rows


def probe_amplification(server: Server) -> list[tuple[str, str]]:
    body = {"prompt": ["hi"] * 200, "n": 128, "max_tokens": 1}
    start = time.monotonic()
    try:
        status, _, _ = call(server.port, "POST", "/v1/completions", body, timeout=30)
        result = f"{status} in {time.monotonic() - start:.1f} s"
    except TimeoutError:
        result = "no answer in 30 s (queued)"
    waiting = metric(server, "cortexstream:num_requests_waiting")
    return [(f"amplification: 200 prompts x n=128 ({len(orjson.dumps(body))} B)",
             f"{result}; waiting sequences after: {waiting}")]


def metric(server: Server, name: str) -> str:
    try:
        _, _, text = call(server.port, "GET", "/metrics", timeout=10)
    except OSError as e:
        return type(e).__name__
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text.decode(), re.M)
    return match.group(1) if match else "?"


def probe_connections(server: Server) -> list[tuple[str, str]]:
    port = server.port
    keep_alive = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    body_head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                 b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    return [
        ("connection: silent", seconds_until_closed(port)),
        ("connection: idle keep-alive after one request", seconds_until_closed(port, keep_alive)),
        ("connection: headers at 1 byte/s", seconds_until_closed(port, b"GET /health HTTP/1.1\r\n", b"X-A: b\r\n")),
        ("connection: body at 1 byte/s", seconds_until_closed(port, body_head, b"{")),
    ]


def probe_descriptors(server: Server) -> list[tuple[str, str]]:
    lines, start = server.log_lines(), time.monotonic()
    sockets = []
    for _ in range(1100):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
        except OSError:
            break
    time.sleep(2)
    during = f"/health {health(server.port, 3.0)}, server fds {server.fds()}"
    time.sleep(8)
    after = f"/health {health(server.port, 3.0)}, server fds {server.fds()}"
    for s in sockets:
        s.close()
    time.sleep(1)
    log_bytes = len(server.log().encode())
    return [(f"fds: {len(sockets)} silent sockets (soft limit {SOFT_NOFILE} at start)",
             f"after 2 s: {during}; after 10 s: {after}; {server.log_lines() - lines} log lines in "
             f"{time.monotonic() - start:.0f} s (log {log_bytes / 1e6:.1f} MB); after closing: fds {server.fds()}")]


def probe_stalled_reader(server: Server) -> list[tuple[str, str]]:
    """A client that sends a request and then reads nothing of a response larger than the kernel's socket
    buffers (up to 4 MB): /tokenize of 3 MB of text with token strings answers ~15 MB."""
    body = orjson.dumps({"prompt": "word " * 600_000, "add_special_tokens": False, "return_token_strs": True})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" +
              body)
    start, result = time.monotonic(), None
    while time.monotonic() - start < 60:
        state = tcp_state(server, s.getsockname()[1])
        if state not in ("ESTAB", "CLOSE-WAIT") and result is None:
            result = f"server let go of the connection after {time.monotonic() - start:.1f} s ({state or 'closed'})"
            break
        time.sleep(1)
    else:
        result = f"connection still held after 60 s; server fds {server.fds()}"
    s.close()
    return [("stalled reader: a 15 MB response the client never reads", result)]


def tcp_state(server: Server, client_port: int) -> str | None:
    """The TCP state of the server's end of the connection from `client_port`, from ss."""
    out = subprocess.run(["ss", "-tanH", f"dport = :{client_port}"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f":{server.port} " in line:
            return line.split()[0]
    return None


def probe_malformed(server: Server) -> list[tuple[str, str]]:
    port = server.port
    big = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
           b"\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\nExpect: 100-continue\r\n\r\n")
    return [
        ("malformed: bad request line", status_line(raw(port, b"GARBAGE\r\n\r\n"))),
        ("malformed: header without a colon", status_line(raw(port, b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n"))),
        ("Expect: 100-continue, Content-Length 1 GB", status_line(raw(port, big, wait=2.0))),
    ]


def probe_auth(server: Server) -> list[tuple[str, str]]:
    def without_key(method: str, path: str, body=None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request(method, path, body=orjson.dumps(body) if body else None,
                               headers={"Content-Type": "application/json"})
            return connection.getresponse().status
        finally:
            connection.close()

    routes = [("POST", "/tokenize", {"prompt": "hi"}), ("POST", "/detokenize", {"tokens": [1]}),
              ("GET", "/tokenizer_info", None), ("GET", "/health", None), ("GET", "/version", None),
              ("GET", "/metrics", None)]
    return [("auth: no key on " + ", ".join(p for _, p, _ in routes),
             " ".join(str(without_key(*r)) for r in routes))]


FORCED_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def probe_forced_tool_calls(server: Server) -> list[tuple[str, str]]:
    results = []
    for seed in range(6):
        body = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": [FORCED_TOOL],
                "tool_choice": "required", "max_tokens": 120, "seed": seed, "temperature": 0.0 if seed == 0 else 0.7}
        status, _, reply = call(server.port, "POST", "/v1/chat/completions", body)
        if status != 200:
            results.append(str(status))
            continue
        choice = orjson.loads(reply)["choices"][0]
        calls = choice["message"].get("tool_calls") or []
        leak = "<tool" in (choice["message"].get("content") or "")
        results.append(f"{choice['finish_reason']}/{len(calls)} call(s){'/LEAK' if leak else ''}")
    return [("forced tool calls: tool_choice required, seeds 0-5 (seed 0 at temperature 0)", ", ".join(results))]


def probe_wire(server: Server) -> list[tuple[str, str]]:
    body = {"messages": USER, "max_tokens": 5, "stream": True}
    _, _, reply = call(server.port, "POST", "/v1/chat/completions", body)
    events = [orjson.loads(line[6:]) for line in reply.decode().split("\n\n") if line.startswith("data: {")]
    last = next(e for e in events if e["choices"] and e["choices"][0]["finish_reason"])
    status, _, info = call(server.port, "GET", "/tokenizer_info")
    keys = sorted(orjson.loads(info)) if status == 200 else []
    return [("wire: delta of the streamed finish_reason chunk", orjson.dumps(last["choices"][0]["delta"]).decode()),
            ("wire: GET /tokenizer_info", f"{status} {' '.join(keys)[:80]}")]


def probe_drain(repo: Path, extra: list[str]) -> list[tuple[str, str]]:
    server = Server(repo, "--shutdown-timeout", "5", *extra).start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request("POST", "/v1/completions", body=orjson.dumps(
        {"prompt": "Once upon a time", "max_tokens": 1000, "ignore_eos": True, "stream": True}), headers=AUTH)
    response = connection.getresponse()
    response.read(6)
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        rest = response.read().decode(errors="replace")
        ending = "clean end"
    except http.client.IncompleteRead as e:
        rest, ending = e.partial.decode(errors="replace"), "cut mid-body"
    try:
        server.process.wait(90)
        exited = f"exit {server.process.returncode} after {time.monotonic() - start:.1f} s"
    except subprocess.TimeoutExpired:
        server.process.kill()
        exited = "still running after 90 s (killed)"
    errors = rest.count('"error"')
    done = "[DONE]" in rest
    return [("drain: SIGTERM, --shutdown-timeout 5, a 1,000-token stream running",
             f"{exited}; stream: {ending}, {errors} error event(s), [DONE] {'yes' if done else 'no'}")]


def probe_flags(repo: Path) -> list[tuple[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    rows = []
    for flags in (["--max-num-seqs", "0"], ["--port", "99999"], ["--model", "/nonexistent/model.gguf"]):
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--port", "0", *ENGINE_ARGS, *flags],
                                  cwd=repo, env=env, capture_output=True, text=True, timeout=120)
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            first = next((line for line in lines if "error" in line.lower() or "Error" in line), lines[-1] if lines
                         else "")
            result = f"exit {proc.returncode} after {time.monotonic() - start:.1f} s: {first[:110]}"
        except subprocess.TimeoutExpired:
            result = "still running after 120 s"
        rows.append((f"flags: serve {' '.join(flags)}", result))
    return rows


SERVER_PROBES = {"grammar": probe_grammar, "amplification": probe_amplification, "connections": probe_connections,
                 "malformed": probe_malformed, "auth": probe_auth, "forced_tool_calls": probe_forced_tool_calls,
                 "wire": probe_wire, "stalled_reader": probe_stalled_reader, "descriptors": probe_descriptors}


def supported_flags(repo: Path) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    text = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--help"], cwd=repo, env=env,
                          capture_output=True, text=True).stdout
    return set(re.findall(r"--[a-z-]+", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="the checkout whose server is probed")
    parser.add_argument("--only", nargs="+", default=None, help=f"probes: {', '.join(SERVER_PROBES)}, drain, flags")
    args = parser.parse_args()
    chosen = args.only or [*SERVER_PROBES, "drain", "flags"]
    flags = supported_flags(args.repo)
    extra = [f for f in ("--timeout-write", "5") if "--timeout-write" in flags]
    print("| probe | result |\n| --- | --- |")
    server_probes = [name for name in chosen if name in SERVER_PROBES]
    if server_probes:
        server = Server(args.repo, *extra).start()
        try:
            for name in server_probes:
                for probe, result in SERVER_PROBES[name](server):
                    print(f"| {probe} | {result} |", flush=True)
        finally:
            server.stop()
    if "drain" in chosen:
        for probe, result in probe_drain(args.repo, []):
            print(f"| {probe} | {result} |", flush=True)
    if "flags" in chosen:
        for probe, result in probe_flags(args.repo):
            print(f"| {probe} | {result} |", flush=True)


if __name__ == "__main__":
    main()
