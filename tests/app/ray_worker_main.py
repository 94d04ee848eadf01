"""Starts a Ray head on loopback and a worker on the Ray executor (fake runners), until a stop file
appears. The Ray test runs this as PID 1 of fresh network and PID namespaces (``unshare``), so
Ray sees only the loopback interface and every process it started ends when this one exits.

Usage: python ray_worker_main.py PORT STOP_FILE RAY_TEMP_DIR  (settings: AUTODISTILLER_* variables)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.services.container import Services  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.app.fake_runners import FAKE_RUNNERS  # noqa: E402


def main(port: int, stop_file: Path, temp: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    settings = Settings()
    services = Services.create(settings)
    executor = None
    deadline = time.monotonic() + 120
    while executor is None:
        try:
            executor = services.build_executor(runners=FAKE_RUNNERS)
        except Exception as exc:  # the head is still starting
            if time.monotonic() > deadline or head.poll() is not None:
                raise SystemExit(f"Ray head did not come up: {exc}") from exc
            time.sleep(1)
    services.attach_executor(executor)
    executor.start()
    print("RAY WORKER READY", flush=True)
    while not stop_file.exists():
        time.sleep(0.2)
    services.close()
    head.terminate()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
