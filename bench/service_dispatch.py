"""Queued -> running dispatch latency of the job queue (goal: at most 2 s).

Two set-ups, both SQLite and the real distillation runner:

- ``embedded``: ``autodistiller serve`` with its executor thread (a submission wakes it at once);
- ``separate``: ``serve --no-worker`` plus an ``autodistiller worker`` process (it polls the
  database every ``worker.poll_s`` = 1 s by default).

Each sample submits one job, waits until it reads ``running``, records the server's
``started_at - created_at`` (the claim) and the latency the client observed, then cancels it
(``stop_grace_s`` = 1 s, so a child still importing torch is killed quickly) before the next one.

Run:  python bench/service_dispatch.py [--samples 15]
Writes bench/results/service_dispatch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_common import BENCH, bench_env, cli, free_port, running, wait_healthy  # noqa: E402

JOB = {
    "kd_config": {"training": {"epochs": 1, "max_length": 32, "batch_size": 16}},
    "student": {"num_layers": 1},
    "measure_latency": False,
}


def _wait(
    client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.01)
    raise TimeoutError(f"job {job_id} did not reach {statuses}")


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max_s": ordered[-1],
        "mean_s": statistics.fmean(ordered),
    }


def run_mode(mode: str, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-dispatch-{mode}-") as tmp, ExitStack() as stack:
        env = bench_env(
            Path(tmp) / "data",
            AUTODISTILLER_WORKER__STOP_GRACE_S="1",
            AUTODISTILLER_META_LEARNER__EMBEDDINGS="off",
            AUTODISTILLER_WORKER__TRAIN_THREADS="1",
        )
        key = cli("keys", "create", "bench", env=env).strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        args = ["serve", "--port", str(port), "--log-level", "warning"]
        proc = stack.enter_context(
            running(args if mode == "embedded" else [*args, "--no-worker"], env, Path(tmp) / "server.log")
        )
        wait_healthy(base, proc)
        if mode == "separate":
            stack.enter_context(running(["worker", "--log-level", "warning"], env, Path(tmp) / "worker.log"))
        client = stack.enter_context(httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120))
        dataset = client.post("/datasets", data={"builtin": "rt_polarity_200"}).json()
        server, observed = [], []
        for i in range(samples + 1):
            start = time.perf_counter()
            job = client.post("/jobs", json={"dataset_id": dataset["id"], **JOB}).json()
            running_job = _wait(client, job["id"], ("running", "succeeded", "failed"))
            seen = time.perf_counter() - start
            created = datetime.fromisoformat(running_job["created_at"])
            started = datetime.fromisoformat(running_job["started_at"])
            if i > 0:  # the first sample includes the worker's own start-up
                server.append((started - created).total_seconds())
                observed.append(seen)
            client.post(f"/jobs/{job['id']}/cancel")
            _wait(client, job["id"], ("cancelled", "succeeded", "failed"))
        result = {
            "mode": mode,
            "samples": samples,
            "server_claim": _stats(server),
            "client_observed": _stats(observed),
        }
        print(
            f"{mode:9s} claim p50 {1000 * result['server_claim']['p50_s']:7.1f} ms  "
            f"p99 {1000 * result['server_claim']['p99_s']:7.1f} ms  | observed p50 "
            f"{1000 * result['client_observed']['p50_s']:7.1f} ms  "
            f"max {1000 * result['client_observed']['max_s']:7.1f} ms",
            flush=True,
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    results = [run_mode(mode, args.samples) for mode in ("embedded", "separate")]
    out = BENCH / "results" / "service_dispatch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "queued -> running dispatch latency",
                "command": f"python bench/service_dispatch.py --samples {args.samples}",
                "goal": "<= 2 s",
                "machine": {"platform": platform.platform(), "load_average_1m": os.getloadavg()[0]},
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
