"""Shared helpers of the service benchmarks: start a real server, make a key, a meta-learner.

Not a test module: the benchmarks print and save results under ``bench/``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return out.stdout


def bench_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AUTODISTILLER_DATA_DIR": str(data_dir),
        **extra,
    }


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        time.sleep(0.3)
    raise TimeoutError("the server did not become healthy")


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m app ARGS`` (the code in ``cwd``) until the block ends (SIGTERM, then kill)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def synthetic_meta_learner(path: Path) -> Path:
    """A meta-learner with the service's default hyper-parameters, fitted on generated records.

    Used only when no shipped or given artifact exists: prediction cost depends on the model's
    size (trees x candidates), not on where its training records came from.
    """
    from threadpoolctl import threadpool_limits

    from models.config import KDConfig, ModelDescriptor
    from recommender import MetaLearner, SweepRecord, candidate_space, save_meta_learner

    teacher = ModelDescriptor("minilm-l6", "bert", 6, 384, 22_700_000, 12, "vocab")
    configs = candidate_space(
        "classification",
        teacher=teacher,
        student=ModelDescriptor("derived:2", "bert", 2, 384, 11_000_000, 12, "vocab"),
    )
    records = []
    for d, n_train in enumerate((170.0, 900.0, 4000.0, 20000.0)):
        for layers in (1, 2, 3):
            student = ModelDescriptor(
                f"derived:{layers}", "bert", layers, 384, 5_000_000 * layers, 12, "vocab"
            )
            for i, cfg in enumerate(configs[d * 7 % 11 :: 37]):
                score = (
                    0.6 + 0.05 * layers + 0.02 * ((i * 7 + d) % 5) + 0.01 * (cfg.intermediate.loss == "mi")
                )
                records.append(
                    SweepRecord(
                        dataset_id=f"bench{d}",
                        teacher=teacher,
                        student=student,
                        kd_config=KDConfig.model_validate(cfg.model_dump()),
                        student_score=score,
                        teacher_score=0.9,
                        meta_features={
                            "n_train": n_train,
                            "is_regression": 0.0,
                            "is_pair": 0.0,
                            "n_labels": 2.0,
                        },
                        metric="accuracy",
                        code_version="bench",
                        seed=0,
                        source="imported",
                        run_id=f"b{d}-{layers}-{i}",
                    )
                )
    with threadpool_limits(1):
        learner = MetaLearner().fit(records)
    save_meta_learner(learner, path, records=records)
    return path
