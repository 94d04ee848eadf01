"""POST /recommend latency (p50/p99) and throughput at 1, 8 and 32 concurrent clients.

Starts a real server (``python -m app serve --no-worker --workers W``, SQLite in a fresh data
folder; uvicorn with uvloop and httptools) for each W in ``--workers`` (default 1 and 2) and drives
it from the same machine. Two request mixes:

- ``repeat``: the same dataset, teacher and student every time (the stored answer: the cost is
  the HTTP round trip, the key check (cached for 5 s) and the dataset read), driven by ApacheBench
  (``ab``, Debian ``apache2-utils``);
- ``distinct``: inline meta-features that differ in every request (a full ranking of the
  candidate space, explanations for the k returned, an insert), driven by ``wrk`` (Debian ``wrk``)
  with ``bench/recommend_distinct.lua``.

Both are C clients, so the load generator does not eat the CPU the server needs; without them
the Python client (httpx) drives both mixes. ``--compare REV`` measures another revision of the
code (a git worktree of REV, same clients, same machine) right before each setting, so changes
read as ratios of figures taken minutes apart rather than sessions apart.

Run:  python bench/service_recommend.py [--seconds 8] [--workers 1 2] [--compare REV]
Writes bench/results/service_recommend.json and bench/results/service_recommend.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_common import (  # noqa: E402
    BENCH,
    bench_env,
    cli,
    free_port,
    running,
    synthetic_meta_learner,
    wait_healthy,
)

CONCURRENCY = (1, 8, 32)
LUA = BENCH / "recommend_distinct.lua"
ROOT = BENCH.parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _distinct_body(n_train: float) -> dict[str, Any]:
    # the same question shape as bench/recommend_distinct.lua sends
    return {
        "meta_features": {"n_train": n_train, "is_pair": 0.0, "n_labels": 2.0},
        "task_kind": "classification",
        "k": 5,
    }


async def _drive(
    base: str, key: str, body: Any, concurrency: int, seconds: float, offset: int
) -> dict[str, Any]:
    """The Python client: ``concurrency`` connections sending for ``seconds``; ``body`` is a
    dict (the same request every time) or None (a distinct question every time)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(offset, offset + 10**9))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"X-API-Key": key}, timeout=60, limits=limits
    ) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                payload = body if body is not None else _distinct_body(100.0 + next(counter))
                start = time.perf_counter()
                response = await client.post("/recommend", json=payload)
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 201

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "throughput_rps": len(latencies) / wall,
    }


def _ab(
    base: str, key: str, body: dict[str, Any], concurrency: int, seconds: float, tmp: Path
) -> dict[str, Any]:
    """Drive POST /recommend with ApacheBench for ``seconds`` and read its summary."""
    payload = tmp / "body.json"
    payload.write_text(json.dumps(body))
    out = subprocess.run(
        ["ab", "-q", "-k", "-t", str(seconds), "-n", "500000", "-c", str(concurrency)]
        + ["-p", str(payload), "-T", "application/json", "-H", f"X-API-Key: {key}", f"{base}/recommend"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out, flags=re.M)
        if match is None:
            raise RuntimeError(f"unexpected ab output:\n{out}")
        return float(match[1])

    non_2xx = re.search(r"^Non-2xx responses:\s+(\d+)", out, flags=re.M)
    return {
        "concurrency": concurrency,
        "requests": int(number(r"^Complete requests:\s+(\d+)")),
        "errors": int(number(r"^Failed requests:\s+(\d+)")) + (int(non_2xx[1]) if non_2xx else 0),
        "p50_ms": number(r"^\s+50%\s+(\d+)"),
        "p99_ms": number(r"^\s+99%\s+(\d+)"),
        "mean_ms": number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        "throughput_rps": number(r"^Requests per second:\s+([\d.]+)"),
    }


def _wrk(base: str, key: str, concurrency: int, seconds: float, offset: int) -> dict[str, Any]:
    """Drive POST /recommend with wrk and bench/recommend_distinct.lua (a new question each time)."""
    out = subprocess.run(
        ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{seconds:g}s"]
        + ["-s", str(LUA), base],
        env={**os.environ, "BENCH_API_KEY": key, "BENCH_OFFSET": str(offset)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])  # the script's done() line
    n = summary["requests"]
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": summary["errors"],
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "mean_ms": summary["mean_us"] / 1000,
        "throughput_rps": n / (summary["duration_us"] / 1e6),
    }


def _cpu_seconds(root: int) -> float | None:
    """CPU time (user + system) of process ``root`` and all its descendants, from /proc (Linux;
    None elsewhere): the server's own cost per request, whatever the client costs."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    parent, ticks = {}, {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parent[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    family, frontier = {root}, [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in family]
        family.update(kids)
        frontier = kids
    return sum(ticks.get(pid, 0) for pid in family) / os.sysconf("SC_CLK_TCK")


def _measure(
    code: Path, label: str, workers: int, seconds: float, tmp: Path, extra_env: dict[str, str], offset: int
) -> list[dict[str, Any]]:
    """Start the server of the code in ``code`` on a fresh data folder and run every cell."""
    run_dir = tmp / f"{label}-{workers}"
    env = bench_env(run_dir / "data", **extra_env)
    key = cli("keys", "create", "bench", env=env, cwd=code).strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--no-worker", "--log-level", "warning", "--workers", str(workers)]
    rows = []
    with running(args, env, run_dir / "server.log", cwd=code) as proc:
        wait_healthy(base, proc)
        headers = {"X-API-Key": key}
        dataset = httpx.post(
            f"{base}/datasets", data={"builtin": "rt_polarity_200"}, headers=headers, timeout=300
        ).json()
        repeat = {"dataset_id": dataset["id"], "k": 5}
        # warm every process: the meta-learner loaded, the candidate table built
        for i in range(4 * workers):
            httpx.post(f"{base}/recommend", json=repeat, headers=headers, timeout=120)
            httpx.post(f"{base}/recommend", json=_distinct_body(float(i)), headers=headers, timeout=120)
        for mix in ("repeat", "distinct"):
            for concurrency in CONCURRENCY:
                offset += 10**7
                cpu_before = _cpu_seconds(proc.pid)
                if mix == "repeat" and shutil.which("ab"):
                    measured, client = _ab(base, key, repeat, concurrency, seconds, run_dir), "ab"
                elif mix == "distinct" and shutil.which("wrk"):
                    measured, client = _wrk(base, key, concurrency, seconds, offset), "wrk"
                else:
                    body = repeat if mix == "repeat" else None
                    measured = asyncio.run(_drive(base, key, body, concurrency, seconds, offset))
                    client = "httpx"
                cpu_after = _cpu_seconds(proc.pid)
                row = {"code": label, "workers": workers, "mix": mix, "client": client, **measured}
                if cpu_before is not None and cpu_after is not None and measured["requests"]:
                    row["server_cpu_ms_per_request"] = 1000 * (cpu_after - cpu_before) / measured["requests"]
                rows.append(row)
                print(
                    f"{label:>10s} workers {workers}  {mix:8s} c={concurrency:2d}  "
                    f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                    f"{row['throughput_rps']:7.1f} req/s  errors {row['errors']}  "
                    f"server CPU {row.get('server_cpu_ms_per_request', float('nan')):.2f} ms/req",
                    flush=True,
                )
    return rows


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    codes = list(dict.fromkeys(r["code"] for r in results))
    for code in codes:
        style = "-" if code == "current" else "--"
        for workers in sorted({r["workers"] for r in results}):
            for mix, marker in (("repeat", "o"), ("distinct", "s")):
                rows = [r for r in results if (r["code"], r["mix"], r["workers"]) == (code, mix, workers)]
                conc = [r["concurrency"] for r in rows]
                label = f"{code}: {mix}, {workers} proc"
                axes[0].plot(conc, [r["p99_ms"] for r in rows], style, marker=marker, label=label)
                axes[1].plot(conc, [r["throughput_rps"] for r in rows], style, marker=marker, label=label)
    axes[0].axhline(50, color="grey", linewidth=0.8, label="goal: p99 50 ms")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="concurrent clients",
        ylabel="p99 latency (ms)",
        title="POST /recommend p99 latency",
    )
    axes[1].set(
        xscale="log", yscale="log", xlabel="concurrent clients", ylabel="requests / s", title="throughput"
    )
    for ax in axes:
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.legend(fontsize=6.5)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--artifact", type=Path, help="meta-learner artifact (default: shipped, else synthetic)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of load per cell")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="API processes (each setting measured in turn)"
    )
    parser.add_argument("--compare", metavar="REV", help="also measure this git revision, side by side")
    args = parser.parse_args()
    out_dir = BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp_name:
        tmp = Path(tmp_name)
        extra = {"AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off"}
        from app.services.meta_learner import SHIPPED_ARTIFACT

        artifact = args.artifact or (
            None if SHIPPED_ARTIFACT.is_file() else synthetic_meta_learner(tmp / "meta.skops")
        )
        source = str(args.artifact) if args.artifact else ("shipped" if artifact is None else "synthetic")
        if artifact is not None:
            extra["AUTODISTILLER_META_LEARNER__ARTIFACT"] = str(artifact)
        codes = [("current", ROOT)]
        if args.compare:
            rev = subprocess.run(
                ["git", "rev-parse", "--short", args.compare],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            worktree = tmp / f"code-{rev}"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), rev], cwd=ROOT, check=True)
            codes.insert(0, (rev, worktree))
        try:
            results = []
            offset = 0
            for workers in args.workers:
                for label, code in codes:
                    results += _measure(code, label, workers, args.seconds, tmp, extra, offset)
                    offset += 10**9
        finally:
            if args.compare:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    summary = {
        "benchmark": "POST /recommend",
        "command": shlex.join(["python", "bench/service_recommend.py", *sys.argv[1:]]),
        "meta_learner": source,
        "server": "serve --no-worker --workers W (uvicorn with uvloop + httptools), SQLite (WAL) in a fresh "
        "data folder per server, compute_threads=1; clients on the same machine",
        "codes": {label: str(code.relative_to(tmp) if code != ROOT else ".") for label, code in codes},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_before_after": [load_before, os.getloadavg()[0]],
        },
        "goal": "p99 <= 50 ms at 32 concurrent clients",
        "results": results,
    }
    (out_dir / "service_recommend.json").write_text(json.dumps(summary, indent=2))
    _plot(results, out_dir / "service_recommend.png")
    print(f"wrote {out_dir / 'service_recommend.json'} and service_recommend.png")


if __name__ == "__main__":
    main()
