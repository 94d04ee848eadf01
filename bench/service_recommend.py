"""POST /recommend latency (p50/p99) and throughput at 1, 8 and 32 concurrent clients.

Starts a real server (``python -m app serve --no-worker --workers W``, SQLite; uvicorn with uvloop and
httptools) for each W in ``--workers`` (default 1 and 2, measured in turn in one run) and drives it from
the same machine. Two request mixes:

- ``repeat``: the same dataset, teacher and student every time (the answer is memoised per
  meta-learner version and its JSON rendered once: the cost is the HTTP round trip, the key check
  (cached for 5 s) and the dataset read),
  driven by ApacheBench (``ab``, Debian ``apache2-utils``; a C client, so the load generator does
  not eat the CPU the server needs) when it is installed, else by the Python client;
- ``distinct``: inline meta-features that differ in every request (a full ranking and an insert
  every time), driven by an asyncio httpx client (``ab`` cannot vary the body).

Run:  python bench/service_recommend.py [--artifact PATH] [--requests 300] [--workers 1 2]
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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _drive(base: str, key: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"X-API-Key": key}, timeout=60, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                start = time.perf_counter()
                response = await client.post("/recommend", json=body)
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


def _ab(base: str, key: str, body: dict[str, Any], n: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    """Drive POST /recommend with ApacheBench and read its summary."""
    payload = tmp / "body.json"
    payload.write_text(json.dumps(body))
    out = subprocess.run(
        [
            "ab",
            "-q",
            "-k",
            "-n",
            str(n),
            "-c",
            str(concurrency),
            "-p",
            str(payload),
            "-T",
            "application/json",
            "-H",
            f"X-API-Key: {key}",
            f"{base}/recommend",
        ],
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
        "requests": n,
        "errors": int(number(r"^Failed requests:\s+(\d+)")) + (int(non_2xx[1]) if non_2xx else 0),
        "p50_ms": number(r"^\s+50%\s+(\d+)"),
        "p99_ms": number(r"^\s+99%\s+(\d+)"),
        "mean_ms": number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        "throughput_rps": number(r"^Requests per second:\s+([\d.]+)"),
    }


def _bodies(mix: str, dataset_id: str, n: int, offset: int) -> list[dict[str, Any]]:
    if mix == "repeat":
        return [{"dataset_id": dataset_id, "k": 5} for _ in range(n)]
    return [
        {
            "meta_features": {"n_train": 100.0 + offset + i, "is_pair": 0.0, "n_labels": 2.0},
            "task_kind": "classification",
            "k": 5,
        }
        for i in range(n)
    ]


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for workers in sorted({r["workers"] for r in results}):
        for mix, marker in (("repeat", "o"), ("distinct", "s")):
            rows = [r for r in results if r["mix"] == mix and r["workers"] == workers]
            conc = [r["concurrency"] for r in rows]
            label = f"{mix}, {workers} proc"
            axes[0].plot(conc, [r["p99_ms"] for r in rows], marker=marker, label=f"{label} p99")
            axes[1].plot(conc, [r["throughput_rps"] for r in rows], marker=marker, label=label)
    axes[0].axhline(50, color="grey", linewidth=0.8, label="goal: p99 50 ms")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="concurrent clients",
        ylabel="latency (ms)",
        title="POST /recommend p99 latency",
    )
    axes[1].set(xscale="log", xlabel="concurrent clients", ylabel="requests / s", title="throughput")
    for ax in axes:
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--artifact", type=Path, help="meta-learner artifact (default: shipped, else synthetic)"
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per cell of the repeat mix")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="API processes (each setting measured in turn)"
    )
    args = parser.parse_args()
    out_dir = BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        data = Path(tmp) / "data"
        extra = {"AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off"}
        from app.services.meta_learner import SHIPPED_ARTIFACT

        artifact = args.artifact or (
            None if SHIPPED_ARTIFACT.is_file() else synthetic_meta_learner(Path(tmp) / "meta.skops")
        )
        source = str(args.artifact) if args.artifact else ("shipped" if artifact is None else "synthetic")
        if artifact is not None:
            extra["AUTODISTILLER_META_LEARNER__ARTIFACT"] = str(artifact)
        env = bench_env(data, **extra)
        key = cli("keys", "create", "bench", env=env).strip().splitlines()[-1]
        results = []
        offset = 0
        for workers in args.workers:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with running(
                [
                    "serve",
                    "--port",
                    str(port),
                    "--no-worker",
                    "--log-level",
                    "warning",
                    "--workers",
                    str(workers),
                ],
                env,
                Path(tmp) / f"server-{workers}.log",
            ) as proc:
                wait_healthy(base, proc)
                headers = {"X-API-Key": key}
                dataset = httpx.post(
                    f"{base}/datasets", data={"builtin": "rt_polarity_200"}, headers=headers, timeout=300
                ).json()
                httpx.post(
                    f"{base}/recommend", json={"dataset_id": dataset["id"]}, headers=headers, timeout=120
                )
                use_ab = shutil.which("ab") is not None
                for mix in ("repeat", "distinct"):
                    for concurrency in CONCURRENCY:
                        n = args.requests if mix == "repeat" else max(60, args.requests // 4)
                        bodies = _bodies(mix, dataset["id"], n, offset)
                        offset += n
                        if mix == "repeat" and use_ab:
                            measured = _ab(base, key, bodies[0], n, concurrency, Path(tmp))
                            row = {"workers": workers, "mix": mix, "client": "ab", **measured}
                        else:
                            measured = asyncio.run(_drive(base, key, bodies, concurrency))
                            row = {"workers": workers, "mix": mix, "client": "httpx", **measured}
                        results.append(row)
                        print(
                            f"workers {workers}  {mix:8s} c={concurrency:2d}  p50 {row['p50_ms']:7.1f} ms  "
                            f"p99 {row['p99_ms']:7.1f} ms  "
                            f"{row['throughput_rps']:6.1f} req/s  errors {row['errors']}",
                            flush=True,
                        )
    summary = {
        "benchmark": "POST /recommend",
        "command": shlex.join(["python", "bench/service_recommend.py", *sys.argv[1:]]),
        "meta_learner": source,
        "server": "serve --workers W (uvicorn with uvloop + httptools), SQLite (WAL), compute_threads=1; "
        "clients on the same machine",
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
