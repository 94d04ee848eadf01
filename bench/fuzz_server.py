"""Fuzz a live ``autodistiller serve`` with hostile requests and report what breaks (issue 18).

Starts a real server (auth on, a fresh data folder in a temporary directory, 127.0.0.1 on a free
port, no worker: nothing trains), makes keys (two ``write`` keys, a ``read`` and an ``admin`` key
where ``keys create --scope`` exists), creates real objects as key 1, then, for a bounded number of
requests and seconds, sends in turn:

- ``schemathesis``: cases generated from the server's own OpenAPI schema, every operation;
- ``fields``: every string and number field of every operation with every hostile value of the
  route fuzz suite (``tests/app/test_fuzz_routes.py``: the same catalogue and schema walk);
- ``hypothesis``: 1-3 mutations per request with hostile Content-Type, Content-Length,
  Authorization, X-API-Key, Idempotency-Key and Last-Event-ID headers, with and without keys;
- ``uploads``: CSV, TSV, JSON lines, JSON and Parquet, plain and gz, bz2, xz, zip, mutated (bit
  flips, truncation, hostile bytes, 16k columns, deep nesting, huge numbers) and compression bombs
  (64 MB inflated from a few KB), with hostile file names;
- ``raw``: hand-written HTTP on a socket: Content-Length mismatches and junk, bad chunking,
  request smuggling shapes, oversized headers, path traversal on every route and the docs files;
- ``races``: the same submission, cancel, sweep, upload or delete from 8 threads at once;
- ``cross_key``: key 2 (and a read key, and no key) on key 1's datasets, jobs, recommendations
  and sweeps: reading, listing, cancelling, deleting, using them in new requests.

The server runs in an empty working directory holding canary files (a CSV, a JSON lines file, a
pyproject.toml): an answer showing their text, a built-in name that loads one, or a file the
server writes outside its data folder is a leak. Meanwhile it samples the server's resident
memory (its process and children, from ``/proc``).
It writes ``bench/results/fuzz_server.json``: the command, requests tried, answers by status and
by kind, up to 50 server errors (request, response, and the server log's traceback), every leak
(a response carrying the data folder, model root, working directory or home; a 2xx to another
key's object), the peak RSS and the duration, and prints a short summary. Stops by itself.

    python bench/fuzz_server.py                        # 3 minutes or 20,000 requests
    python bench/fuzz_server.py --seconds 120 --seed 2
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import copy
import gzip
import io
import json
import lzma
import random
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.service_common import (  # noqa: E402
    bench_env,
    cli,
    free_port,
    running,
    synthetic_meta_learner,
    wait_healthy,
)
from tests.app import test_fuzz_routes as fz  # noqa: E402  (the route fuzz's generators)
from tests.postgres import fresh_database  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fuzz_server.json"
MAX_EXAMPLES = 50
# Each generated kind's share of the request and time budget, in this order. Before and after
# them, one pass of the fixed lists: cross-key access (twice: objects change), raw HTTP, races.
SHARES = {"uploads": 0.15, "fields": 0.35, "schemathesis": 0.28, "hypothesis": 0.22}
PASS_LIMIT_S = 120.0  # a fixed pass's own bound
FRAMING_HEADERS = {"content-length", "transfer-encoding"}


class Stop(Exception):
    """The current kind has used its share."""


# ---- the server --------------------------------------------------------------------------------


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every descendant, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            rss[int(entry.name)] = int((entry / "statm").read_text().split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    page = 4096
    return sum(rss.get(p, 0) for p in tree) * page / 2**20


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_mb = self.first_mb = process_tree_rss_mb(pid)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, process_tree_rss_mb(self.pid))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def keys_help(env: dict[str, str]) -> str:
    """``keys create --help``: tells whether keys have scopes (``--scope``)."""
    args = [sys.executable, "-m", "app", "keys", "create", "--help"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300).stdout


def make_key(name: str, scope: str | None, env: dict[str, str]) -> str:
    args = ["keys", "create", name, *(["--scope", scope] if scope else [])]
    return cli(*args, env=env).strip().splitlines()[-1]


# ---- the fuzzer --------------------------------------------------------------------------------


class LiveFuzz:
    """Sends requests to the server, keeps the tallies and the findings."""

    def __init__(self, base: str, keys: dict[str, str], secrets: tuple[str, ...], rng: random.Random) -> None:
        self.base, self.keys, self.secrets, self.rng = base, keys, secrets, rng
        self.client = httpx.Client(base_url=base, timeout=httpx.Timeout(30.0, connect=5.0))
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        self.server_errors: list[dict[str, Any]] = []
        self.server_error_count = 0
        self.leaks: list[dict[str, Any]] = []
        self._leak_index: dict[tuple[str, str], int] = {}
        self.lock = threading.RLock()  # the races send from threads
        self.kind = ""
        self.budget_end = (0.0, 0)  # (monotonic deadline, request count) of the current kind
        self.alive: Callable[[], bool] = lambda: True

    # -- sending -------------------------------------------------------------------------------
    def auth(self, mode: str) -> dict[str, str]:
        if mode == "bearer":
            return {"Authorization": f"Bearer {self.keys['key']}"}
        return {"X-API-Key": self.keys[mode]} if mode in self.keys else {}

    def check_budget(self) -> None:
        deadline, count = self.budget_end
        if time.monotonic() > deadline or self.requests >= count:
            raise Stop
        if not self.alive():
            raise RuntimeError("the server process exited")

    def send(self, req: fz.Request, auth: str = "key", timeout: float | None = None) -> httpx.Response | None:
        """Send one fuzz request; tally it; record a 5xx or a path leak."""
        self.check_budget()
        with self.lock:
            self.requests += 1
        try:
            request = self.client.build_request(**req.httpx_kwargs(self.auth(auth)), timeout=timeout or 30.0)
        except Exception as exc:  # e.g. a file name httpx cannot put in a multipart header: not sent
            self.tally(f"not_sendable:{type(exc).__name__}")
            return None
        try:
            response = self.client.send(request)
        except httpx.TimeoutException:
            self.tally("timeout")
            return None
        except httpx.LocalProtocolError as exc:  # h11 would not send it (a malformed header value)
            self.tally(f"not_sendable:{type(exc).__name__}")
            return None
        except httpx.HTTPError as exc:
            self.tally(f"connection_error:{type(exc).__name__}")
            return None
        except Exception as exc:  # the client refused to send it
            self.tally(f"not_sendable:{type(exc).__name__}")
            return None
        self.tally(str(response.status_code))
        self.inspect(response.status_code, response.text, dict(response.headers), req.summary(), auth)
        return response

    def tally(self, status: str) -> None:
        with self.lock:
            self.by_status[status] += 1
            self.by_kind[self.kind][status] += 1

    def inspect(self, status: int, text: str, headers: dict[str, str], summary: str, auth: str) -> None:
        with self.lock:
            self._inspect(status, text, headers, summary, auth)

    def _inspect(self, status: int, text: str, headers: dict[str, str], summary: str, auth: str) -> None:
        if status >= 500:
            self.server_error_count += 1
            if len(self.server_errors) < 50:
                self.server_errors.append(
                    {
                        "kind": self.kind,
                        "auth": auth,
                        "request": summary[:800],
                        "status": status,
                        "response": text[:500],
                        "at": time.time(),
                    }
                )
        found = [s for s in self.secrets if s in text or any(s in v for v in headers.values())]
        if found:
            at = min(text.find(s) for s in found if s in text) if any(s in text for s in found) else 0
            self.add_leak(
                {
                    "type": "canary" if CANARY in found else "path",
                    "kind": self.kind,
                    "auth": auth,
                    "paths": found,
                    "request": summary[:800],
                    "status": status,
                    "excerpt": text[max(0, at - 150) : at + 250],
                }
            )

    def add_leak(self, leak: dict[str, Any]) -> None:
        """Keep each distinct leak once (type, request), counting repeats."""
        key = (leak["type"], leak["request"])
        if key in self._leak_index:
            self.leaks[self._leak_index[key]]["times"] += 1
            return
        self._leak_index[key] = len(self.leaks)
        self.leaks.append({**leak, "times": 1})

    def leak(self, kind: str, summary: str, response: httpx.Response | None, why: str) -> None:
        self.add_leak(
            {
                "type": kind,
                "kind": self.kind,
                "request": summary[:800],
                "status": response.status_code if response is not None else None,
                "why": why,
                "excerpt": response.text[:300] if response is not None else "",
            }
        )

    # -- kinds -----------------------------------------------------------------------------------
    def run_kind(self, kind: str, fn: Callable[[], None], seconds: float, count: int) -> None:
        self.kind = kind
        self.budget_end = (time.monotonic() + seconds, self.requests + count)
        with contextlib.suppress(Stop):
            fn()

    def fields(self, ctx: fz.Context, ops: list[fz.Operation]) -> None:
        cases = [(op, f, v) for op in ops for f in op.fields for v in fz.hostile_values(f.kind)]
        self.rng.shuffle(cases)
        for op, f, value in cases:
            self.send(fz.mutate(fz.baseline_for(ctx, op, f), f, value), fz.auth_for(op))

    def hypothesis(self, ctx: fz.Context, ops: list[fz.Operation], seed: int) -> None:
        from hypothesis import given
        from hypothesis import seed as hseed

        while True:  # round after round over the operations until the share is used
            for op in ops:

                @hseed(seed + self.requests)
                @_generate_only()
                @given(case=fz.hostile_requests(op, ctx))
                def one(case: tuple[fz.Request, str]) -> None:
                    req, auth = case
                    # h11 will not send a body that contradicts these: the raw pass sends them
                    req.headers = {k: v for k, v in req.headers.items() if k.lower() not in FRAMING_HEADERS}
                    self.send(req, auth)

                one()

    def schemathesis(self, openapi: dict[str, Any], seed: int) -> None:
        from hypothesis import given
        from hypothesis import seed as hseed
        from schemathesis.openapi import from_dict

        schema = from_dict(openapi)
        operations = [result.ok() for result in schema.get_all_operations()]
        while True:
            for operation in operations:

                @hseed(seed + self.requests)
                @_generate_only()
                @given(case=operation.as_strategy())
                def one(case: Any) -> None:
                    self.send_schemathesis(case)

                one()

    def send_schemathesis(self, case: Any) -> None:
        kw = case.as_transport_kwargs(base_url="")
        if kw["url"].endswith("/events"):  # a queued job's stream stays open until its timeout
            kw["params"] = {**(kw.get("params") or {}), "timeout_s": "1"}
        headers = {k: v for k, v in kw["headers"].items() if k.lower() not in ("x-api-key", "authorization")}
        auth = self.rng.choice(("key", "key", "admin", "none"))
        content = kw.get("data")
        if "json" in kw:
            content = json.dumps(kw["json"]).encode()
        req = fz.Request(
            kw["method"],
            kw["url"],
            params={k: str(v) for k, v in (kw.get("params") or {}).items()},
            headers=headers,
            content=content.encode() if isinstance(content, str) else content,
            files=_files(kw.get("files")),
        )
        self.send(req, auth)

    def uploads(self) -> None:
        while True:
            for fmt in FORMATS:
                for codec in CODECS:
                    for mutation in MUTATIONS:
                        name, payload = upload_file(fmt, codec, mutation, self.rng)
                        data = {"name": "fuzz upload", "text_column": "text", "label_column": "label"}
                        if self.rng.random() < 0.2:
                            field_name = self.rng.choice(list(data) + ["dev_fraction", "task_kind"])
                            data[field_name] = fz.as_text(
                                self.rng.choice(fz.HOSTILE_STRINGS + fz.HOSTILE_NUMBERS)
                            )
                        if self.rng.random() < 0.1:
                            name = self.rng.choice(HOSTILE_FILENAMES) + name[name.find(".") :]
                        req = fz.Request("POST", "/datasets", data=data, files={"file": (name, payload)})
                        req.content = None
                        self.send(req, "key", timeout=120)

    def raw(self, ids: dict[str, str], routes: list[str]) -> None:
        host = self.base.removeprefix("http://")
        addr = (host.split(":")[0], int(host.split(":")[1]))
        for label, payload in raw_requests(self.keys["key"], ids, routes):
            self.check_budget()
            self.requests += 1
            status, text = raw_exchange(addr, payload)
            self.tally(status)
            self.inspect(int(status) if status.isdigit() else 0, text, {}, f"raw {label}", "raw")

    def races(self, ids: dict[str, str], rounds: int = 6, width: int = 8) -> None:
        """The same request from ``width`` threads at once: idempotent job submissions, cancels,
        deletes, identical sweeps and uploads (a lost race must be a 4xx or the first answer)."""
        from concurrent.futures import ThreadPoolExecutor

        ds = ids["dataset"]
        with ThreadPoolExecutor(width) as pool:
            for r in range(rounds):
                job = {"dataset_id": ds, "kd_config": {"training": {"seed": 1000 + r}}, "deliver": False}
                fresh = self.send(fz.Request("POST", "/jobs", {}, *_json(job)))
                victim = (
                    fresh.json().get("id", "none")
                    if fresh is not None and fresh.status_code < 300
                    else "none"
                )
                csv_bytes = fz.TINY_CSV.encode() + f"race {r},0\n".encode()
                upload = {"name": f"race {r}", "text_column": "text", "label_column": "label"}
                bursts = [
                    fz.Request(
                        "POST", "/jobs", {}, {**_json(job)[0], "Idempotency-Key": f"race-{r}"}, _json(job)[1]
                    ),
                    fz.Request("POST", f"/jobs/{victim}/cancel"),
                    fz.Request("POST", "/sweeps", {}, *_json({"dataset_ids": [ds], "budget": 2, "seed": r})),
                    fz.Request("POST", "/datasets", data=upload, files={"file": ("race.csv", csv_bytes)}),
                ]
                for req in bursts:
                    list(pool.map(lambda q: self.send(copy.deepcopy(q)), [req] * width))
                # the uploads of this round are deleted by every thread at once
                listed = self.send(fz.Request("GET", "/datasets?limit=200"))
                names = (
                    listed.json().get("data", []) if listed is not None and listed.status_code == 200 else []
                )
                for d in [d["id"] for d in names if d.get("name") == f"race {r}"][:2]:
                    list(
                        pool.map(
                            lambda q: self.send(copy.deepcopy(q)),
                            [fz.Request("DELETE", f"/datasets/{d}")] * width,
                        )
                    )

    def canaries(self) -> None:
        """Built-in names that are files in the server's working directory: never a dataset."""
        for name in (
            "canary",
            "canary.csv",
            "./canary.csv",
            "canary.jsonl",
            "pyproject.toml",
            "cwd/canary.csv",
        ):
            req = fz.Request("POST", "/datasets", data={"builtin": name})
            r = self.send(req)
            if r is not None and r.status_code < 300:
                self.leak(
                    "file_read", f"POST /datasets builtin={name}", r, "a file of the server's folder loaded"
                )

    def cross_key(self, ids: dict[str, str]) -> None:
        """Key 2, a read key and no key at all, on key 1's objects."""
        ds, job, rec, sweep = ids["dataset"], ids["cancel_job"], ids["recommendation"], ids["sweep"]
        reads = [
            f"/datasets/{ds}",
            f"/jobs/{job}",
            f"/jobs/{ids['cancelled_job']}/events?timeout_s=1",
            f"/jobs/{job}/logs",
            f"/jobs/{job}/artifacts",
            f"/jobs/{job}/artifacts/report.json",
            f"/recommendations/{rec}",
            f"/sweeps/{sweep}",
            f"/sweeps/{sweep}/records",
        ]
        if "search" in ids:
            reads += [f"/searches/{ids['search']}", f"/searches/{ids['cancelled_search']}/events?timeout_s=1"]
        lists = [
            "/datasets",
            "/jobs",
            "/sweeps",
            "/searches",
            f"/jobs?dataset_id={ds}",
            f"/sweep-records?dataset_id={ds}",
        ]
        jobs_body = {"dataset_id": ds, "kd_config": {}, "deliver": False}
        writes = [
            ("POST", f"/jobs/{job}/cancel", None),
            ("DELETE", f"/datasets/{ids['victim_dataset']}", None),
            ("POST", "/recommend", {"dataset_id": ds, "k": 2}),
            ("POST", "/jobs", jobs_body),
            ("POST", "/jobs", {"dataset_id": ds, "recommendation_id": rec, "rank": 1, "deliver": False}),
            ("POST", "/sweeps", {"dataset_ids": [ds], "budget": 1}),
            ("POST", "/searches", {"dataset_id": ds, "max_runs": 1}),
        ]
        if "cancel_search" in ids:
            writes.append(("POST", f"/searches/{ids['cancel_search']}/cancel", None))
        others = [m for m in ("key2", "read2", "none") if m in self.keys or m == "none"]
        mine = set(ids.values())
        for mode in others:
            for url in reads:
                r = self.send(fz.Request("GET", url), mode, timeout=10)
                if r is not None and r.status_code < 300:
                    self.leak("cross_key", f"GET {url} as {mode}", r, "another key's object answered 2xx")
            for url in lists:
                r = self.send(fz.Request("GET", url), mode)
                if r is not None and r.status_code < 300 and any(i in r.text for i in mine):
                    self.leak("cross_key", f"GET {url} as {mode}", r, "a listing shows key 1's ids")
            for method, url, body in writes:
                content = fz.dumps(body) if body is not None else None
                headers = {"Content-Type": "application/json"} if body is not None else {}
                r = self.send(fz.Request(method, url, headers=headers, content=content), mode)
                if r is not None and r.status_code < 300:
                    self.leak("cross_key", f"{method} {url} as {mode}", r, "used another key's object")


def _json(body: Any) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, fz.dumps(body)


def _files(files: Any) -> Any:
    """Schemathesis' multipart parts as httpx takes them (numbers and lists become text)."""
    if not files:
        return None
    items = files.items() if isinstance(files, dict) else files
    return [
        (name, value if isinstance(value, tuple | bytes | str) else json.dumps(value).encode())
        for name, value in items
    ]


# ---- uploads -----------------------------------------------------------------------------------

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
CODECS = ("", ".gz", ".bz2", ".xz", ".zip")
MUTATIONS = (
    "none",
    "bitflips",
    "truncate",
    "hostile_bytes",
    "wide_header",
    "deep_json",
    "huge_numbers",
    "huge_cell",
    "bomb",
)
HOSTILE_FILENAMES = ("../../../etc/passwd", "/abs/path", "a" * 300, "x\x00y", "²", ".", "con", "")
BOMB_BYTES = 64 * 2**20


def table(fmt: str, rows: list[tuple[str, Any]]) -> bytes:
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        return ("text" + sep + "label\n" + "".join(f"{t}{sep}{label}\n" for t, label in rows)).encode()
    if fmt in ("jsonl", "json"):
        return "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [str(v) for _, v in rows]}), out)
    return out.getvalue()


def compress(codec: str, data: bytes) -> bytes:
    if codec == ".gz":
        return gzip.compress(data, 6)
    if codec == ".bz2":
        return bz2.compress(data, 9)
    if codec == ".xz":
        return lzma.compress(data, preset=1)
    if codec == ".zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("data.csv", data)
        return out.getvalue()
    return data


_BOMBS: dict[tuple[str, str], bytes] = {}


def bomb(fmt: str, codec: str) -> bytes:
    """BOMB_BYTES of valid rows in a few KB: multi-stream for gz, bz2 and xz (cheap to build)."""
    key = (fmt, codec)
    if key not in _BOMBS:
        head = table(fmt if fmt != "parquet" else "csv", [("aaaa", 0)])
        row = head.split(b"\n", 1)[1] if fmt in ("csv", "tsv") else head
        chunk = row * (2**20 // len(row))
        if codec in (".gz", ".bz2", ".xz"):
            stream = compress(codec, chunk)
            _BOMBS[key] = compress(codec, head) + stream * (BOMB_BYTES // len(chunk))
        else:
            _BOMBS[key] = compress(codec or ".gz", head + chunk * (BOMB_BYTES // len(chunk)))
    return _BOMBS[key]


def upload_file(fmt: str, codec: str, mutation: str, rng: random.Random) -> tuple[str, bytes]:
    rows = [(f"sample text number {i} {'good' if i % 2 else 'bad'}", i % 2) for i in range(60)]
    name = f"fuzz.{fmt}{codec if fmt != 'parquet' else ''}"
    if mutation == "bomb":
        return f"fuzz.{fmt if fmt != 'parquet' else 'csv'}{codec or '.gz'}", bomb(fmt, codec)
    if mutation == "wide_header" and fmt in ("csv", "tsv"):
        data = (",".join(f"c{i}" for i in range(16_384)) + "\n" + "x," * 16_383 + "x\n").encode()
    elif mutation == "deep_json" and fmt in ("jsonl", "json"):
        data = b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b', "label": 0}\n'
    elif mutation == "huge_numbers":
        labels = ["9" * 5000, "1" + "0" * 400, "1e400", "NaN", "-Infinity", "²"]
        body = table("csv" if fmt == "parquet" else fmt, [(t, rng.choice(labels)) for t, _ in rows])
        data = body if fmt != "json" else body.replace(b'"label": "', b'"label": ').replace(b'"}', b"}")
    elif mutation == "huge_cell":
        data = table(fmt, [("x" * 2_000_000, 0)] + rows)
    else:
        data = table(fmt, rows)
    data = compress(codec, data) if fmt != "parquet" else data
    if mutation == "bitflips":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 40)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        data = bytes(buf)
    elif mutation == "truncate":
        data = data[: rng.randrange(1, len(data))]
    elif mutation == "hostile_bytes":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(buf))
            buf[at:at] = rng.choice(
                [b"\x00", b"\xff\xfe", b'"', b"\r", b"\n\n", b"\x1b[31m", b"\xed\xa0\x80"]
            )
        data = bytes(buf)
    return name, data


# ---- raw HTTP ----------------------------------------------------------------------------------


def raw_requests(key: str, ids: dict[str, str], routes: list[str]) -> list[tuple[str, bytes]]:
    """Requests an HTTP client library would not send."""
    body = json.dumps({"dataset_id": ids["dataset"], "k": 2}).encode()

    def post(path: str, headers: str, payload: bytes) -> bytes:
        return f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n{headers}\r\n".encode() + payload

    cases = [
        ("content-length larger than body", post("/recommend", "Content-Length: 1000\r\n", body)),
        ("content-length smaller than body", post("/recommend", "Content-Length: 5\r\n", body)),
        ("content-length junk ²", post("/recommend", "Content-Length: ²\r\n", body)),
        ("content-length negative", post("/recommend", "Content-Length: -1\r\n", body)),
        ("content-length 20 digits", post("/recommend", "Content-Length: 99999999999999999999\r\n", body)),
        (
            "two content-lengths",
            post("/recommend", f"Content-Length: {len(body)}\r\nContent-Length: 3\r\n", body),
        ),
        (
            "content-length and chunked",
            post("/recommend", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + body),
        ),
        ("bad chunk size", post("/recommend", "Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n")),
        (
            "huge chunk size",
            post("/recommend", "Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\nab\r\n"),
        ),
        ("header 100 KB", f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 100_000}\r\n\r\n".encode()),
        ("2000 headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 2000 + b"\r\n"),
        ("NUL in header", b"GET /datasets HTTP/1.1\r\nHost: x\r\nX-API-Key: a\x00b\r\n\r\n"),
        ("no host, HTTP/1.0", b"GET /datasets HTTP/1.0\r\n\r\n"),
        ("absolute-form URI", b"GET http://evil.example/datasets HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad method", b"PROPFIND /datasets HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ]
    traversals = [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fpyproject.toml",
        "//etc",
    ]
    for route in routes + ["/docs", "/redoc", "/openapi.json", "/static-offline-docs"]:
        for t in traversals:
            path = route.rstrip("/") + t
            cases.append(
                (f"traversal {path}", f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\r\n".encode())
            )
    return cases


def raw_exchange(addr: tuple[str, int], payload: bytes, timeout: float = 1.5) -> tuple[str, str]:
    """Send raw bytes; ``(status or 'no_response', response text)``."""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.sendall(payload)
            chunks = []
            with contextlib.suppress(TimeoutError, ConnectionError):
                while sum(map(len, chunks)) < 200_000:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks)[:8192] and _complete(b"".join(chunks)):
                        break
    except OSError as exc:
        return f"connection_error:{type(exc).__name__}", ""
    text = b"".join(chunks).decode("latin-1")
    match = re.match(r"HTTP/1\.[01] (\d{3})", text)
    return (match[1] if match else "no_response"), text


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return bool(length) and len(body) >= int(length[1])


# ---- canaries ----------------------------------------------------------------------------------

# Files in the server's working directory that no answer may show (a "built-in" name or a path
# that reaches them is a leak), and that tell a file written outside the data folder.
CANARY = "canary-7f3a9c-not-for-clients"
CANARY_FILES = {
    "canary.csv": f"text,label\n{CANARY} one,0\n{CANARY} two,1\n" * 20,
    "canary.jsonl": "".join(json.dumps({"text": f"{CANARY} {i}", "label": i % 2}) + "\n" for i in range(40)),
    "pyproject.toml": f'[project]\nname = "{CANARY}"\n',
}


def plant_canaries(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in CANARY_FILES.items():
        (folder / name).write_text(text)
    return folder


def stray_files(tmp: Path, data_dir: Path, server_cwd: Path) -> list[Path]:
    """Files the server made outside its data folder (in the temporary folder around it)."""
    expected = {tmp / "meta.skops", tmp / "meta.skops.json", tmp / "server.log"}
    expected |= {server_cwd / name for name in CANARY_FILES}
    return sorted(
        p
        for p in tmp.rglob("*")
        if p.is_file() and data_dir not in p.parents and p not in expected and not p.name.startswith("meta")
    )


# ---- set-up, run, report -----------------------------------------------------------------------


def seed_objects(client: httpx.Client, key: str) -> dict[str, str]:
    """Real objects of key 1, so that hostile values reach the logic behind the validation."""
    h = {"X-API-Key": key}

    def ok(r: httpx.Response) -> dict[str, Any]:
        assert r.status_code < 300, (r.request.url, r.status_code, r.text[:500])
        return r.json()

    csv_bytes = fz.TINY_CSV.encode()
    form = {"name": "seed", "text_column": "text", "label_column": "label"}
    dataset = ok(client.post("/datasets", headers=h, data=form, files={"file": ("seed.csv", csv_bytes)}))[
        "id"
    ]
    # an upload: a registered built-in is readable by every key by design
    victim_csv = csv_bytes + b"one more row for a different digest,1\n"
    victim_form = {**form, "name": "victim"}
    victim_upload = client.post(
        "/datasets", headers=h, data=victim_form, files={"file": ("v.csv", victim_csv)}
    )
    victim = ok(victim_upload)["id"]
    rec = ok(client.post("/recommend", headers=h, json={"dataset_id": dataset, "k": 3}))["id"]
    quick = {"dataset_id": dataset, "kd_config": {"training": {"max_steps": 1}}, "deliver": False}
    queued = ok(client.post("/jobs", headers=h, json=quick))["id"]
    cancelled = ok(client.post("/jobs", headers=h, json={**quick, "kd_config": {"training": {"seed": 3}}}))[
        "id"
    ]
    ok(client.post(f"/jobs/{cancelled}/cancel", headers=h))
    to_cancel = ok(client.post("/jobs", headers=h, json={**quick, "kd_config": {"training": {"seed": 4}}}))[
        "id"
    ]
    sweep = ok(client.post("/sweeps", headers=h, json={"dataset_ids": [dataset], "budget": 1}))["id"]
    ids = {
        "dataset": dataset,
        "victim_dataset": victim,
        "recommendation": rec,
        "succeeded_job": queued,  # no worker here: the artifact routes answer 409, which is right
        "cancelled_job": cancelled,
        "events_job": cancelled,  # finished: its event stream ends at once
        "cancel_job": to_cancel,
        "sweep": sweep,
    }
    if "/searches" in client.get("/openapi.json").json()["paths"]:
        for name in ("search", "cancelled_search", "cancel_search"):
            search = {"dataset_id": dataset, "max_runs": 1, "portfolio_size": 1}
            ids[name] = ok(client.post("/searches", headers=h, json=search))["id"]
        ok(client.post(f"/searches/{ids['cancelled_search']}/cancel", headers=h))
    return ids


def tracebacks(log: str) -> list[str]:
    """Each error in the server log as "<log line that reported it> | <final exception line>"
    (a chained traceback counts once, with the exception it ended in)."""
    out: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)"):
            continue
        before = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        after = next((ln for ln in lines[i + 1 :] if ln and not ln.startswith(" ")), "")
        if before.startswith(("The above exception", "During handling")) and out:
            out[-1] = f"{out[-1].split(' | ')[0]} | {after[:300]}"
        else:
            out.append(f"{re.sub(r'^[0-9-]+ [0-9:,]+ ', '', before)[:200]} | {after[:300]}")
    return out


def git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        )
        return rev.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    return "unknown"


def _generate_only() -> Any:
    """The hypothesis settings of every generated pass: a fixed example count, generation only,
    no example database, no health checks (the bench wants volume, not shrinking)."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@contextlib.contextmanager
def fresh_postgres(base_url: str | None) -> Iterator[str | None]:
    """A new, empty database on the Postgres server of ``base_url`` (dropped afterwards); None
    without a URL (the server then uses SQLite in its data folder)."""
    if not base_url:
        yield None
        return
    with fresh_database(base_url, "autodistiller_fuzz") as url:
        yield url


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-server-") as tmp_name, fresh_postgres(args.postgres) as pg:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        extra = {"AUTODISTILLER_AUTH": "true", "AUTODISTILLER_META_LEARNER__EMBEDDINGS": args.embeddings}
        if pg:
            extra["AUTODISTILLER_DATABASE_URL"] = pg
        if args.meta_learner == "synthetic":  # the fuzz does not hinge on the shipped artifact's state
            extra["AUTODISTILLER_META_LEARNER__ARTIFACT"] = str(synthetic_meta_learner(tmp / "meta.skops"))
        env = bench_env(data_dir, **extra)
        scoped = "--scope" in keys_help(env)
        keys = {
            "key": make_key("fuzz-1", "write" if scoped else None, env),
            "key2": make_key("fuzz-2", "write" if scoped else None, env),
            "admin": make_key("fuzz-admin", "admin" if scoped else None, env),
        }
        if scoped:
            keys["read2"] = make_key("fuzz-read", "read", env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp / "server.log"
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker", "--log-level", "warning"]
        secrets = (str(tmp), str(data_dir), str(data_dir / "models"), str(ROOT), str(Path.home()), CANARY)
        server_cwd = plant_canaries(tmp / "cwd")
        with running(serve, env, log, cwd=server_cwd) as proc:
            try:
                wait_healthy(base, proc)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}; server log:\n{log.read_text(errors='replace')[-3000:]}") from exc
            sampler = RssSampler(proc.pid)
            sampler.start()
            fuzz = LiveFuzz(base, keys, tuple(s for s in secrets if len(s) > 5), rng)
            fuzz.alive = lambda: proc.poll() is None
            ids = seed_objects(fuzz.client, keys["key"])
            openapi = fuzz.client.get("/openapi.json").json()
            ops = fz.operations(openapi)
            ctx = fz.Context(ids, fuzz.secrets)
            routes = sorted({re.sub(r"\{\w+\}", ids["dataset"], p) for p in openapi["paths"]})
            kinds: dict[str, Callable[[], None]] = {
                "uploads": fuzz.uploads,
                "fields": lambda: fuzz.fields(ctx, ops),
                "schemathesis": lambda: fuzz.schemathesis(openapi, args.seed),
                "hypothesis": lambda: fuzz.hypothesis(ctx, ops, args.seed),
            }
            fuzz_start = time.monotonic()
            peak_after: dict[str, float] = {}  # the peak so far, after each kind: where memory rose

            def run_kind(kind: str, fn: Callable[[], None], seconds: float, count: int) -> None:
                fuzz.run_kind(kind, fn, seconds, count)
                peak_after[kind] = round(sampler.peak_mb, 1)

            run_kind("cross_key", lambda: fuzz.cross_key(ids), PASS_LIMIT_S, args.max_requests)
            run_kind("raw", lambda: (fuzz.canaries(), fuzz.raw(ids, routes)), PASS_LIMIT_S, args.max_requests)
            run_kind("races", lambda: fuzz.races(ids), PASS_LIMIT_S, args.max_requests)
            for kind, share in SHARES.items():
                left_s = args.seconds - (time.monotonic() - fuzz_start)
                left_n = args.max_requests - fuzz.requests
                weight = share / sum(SHARES[k] for k in list(SHARES)[list(SHARES).index(kind) :])
                print(
                    f"[fuzz] {kind}: up to {left_s * weight:.0f} s, {int(left_n * weight)} requests",
                    flush=True,
                )
                run_kind(kind, kinds[kind], left_s * weight, int(left_n * weight))
            run_kind("cross_key_again", lambda: fuzz.cross_key(ids), PASS_LIMIT_S, args.max_requests * 2)
            duration = time.monotonic() - fuzz_start
            healthy = fuzz.client.get("/health").status_code == 200
            sampler.stop()
        server_log = log.read_text(errors="replace")
        for path in stray_files(tmp, data_dir, server_cwd):
            fuzz.leaks.append({"type": "file_outside_data_dir", "path": str(path.relative_to(tmp))})
    errors = tracebacks(server_log)
    return {
        "command": "python bench/fuzz_server.py " + shlex.join(sys.argv[1:]),
        "revision": git_revision(),
        "requests": fuzz.requests,
        "by_status": dict(sorted(fuzz.by_status.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in fuzz.by_kind.items()},
        "server_error_count": fuzz.server_error_count,
        "server_errors": fuzz.server_errors,
        "server_log_tracebacks": {"count": len(errors), "distinct": sorted(Counter(errors).items())[:50]},
        "leaks": fuzz.leaks[:200],
        "leak_count": len(fuzz.leaks),
        "peak_rss_mb": round(sampler.peak_mb, 1),
        "start_rss_mb": round(sampler.first_mb, 1),
        "peak_rss_mb_after_kind": peak_after,
        "healthy_after": healthy,
        "duration_s": round(duration, 1),
        "setup_s": round(fuzz_start - started, 1),
        "settings": {
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "seed": args.seed,
            "embeddings": args.embeddings,
            "meta_learner": args.meta_learner,
            "database": "postgres" if args.postgres else "sqlite",
            "scoped_keys": scoped,
            "worker": False,
            "shares": SHARES,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="fuzzing time (set-up excluded)")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--embeddings", choices=("off", "subprocess"), default="off", help="dataset embedding meta-features"
    )
    parser.add_argument(
        "--meta-learner",
        choices=("synthetic", "shipped"),
        default="synthetic",
        help="a meta-learner fitted on generated records at start, or the shipped artifact",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the server on a fresh database of this Postgres server "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); default SQLite",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"{report['requests']} requests in {report['duration_s']} s; 5xx: {report['server_error_count']}; "
        f"leaks: {report['leak_count']} ({dict(Counter(leak['type'] for leak in report['leaks']))}); "
        f"peak server RSS {report['peak_rss_mb']} MB (start {report['start_rss_mb']} MB); "
        f"healthy after: {report['healthy_after']}"
    )
    print("by status:", report["by_status"])
    for err in report["server_errors"][:5]:
        print(f"  5xx [{err['kind']}] {err['request'][:160]}")
    for leak in report["leaks"][:5]:
        print(f"  leak [{leak['type']}] {leak.get('request', leak.get('path', ''))[:160]}")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
