"""SIGKILL of a worker mid-job: its training child dies with it, the lease expires, the job is
requeued, and a restarted worker resumes it from the checkpoint; nothing lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.app.conftest import Api
from tests.app.test_worker_local import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _worker(api: Api, log: Path) -> subprocess.Popen[bytes]:
    settings = api.services.settings
    env = {
        **os.environ,
        "AUTODISTILLER_DATA_DIR": str(settings.data_dir),
        "AUTODISTILLER_DATABASE_URL": settings.resolved_database_url,
        "AUTODISTILLER_EXECUTOR": "local",
        "AUTODISTILLER_WORKER__LEASE_S": "2",
        "AUTODISTILLER_WORKER__HEARTBEAT_S": "0.3",
        "AUTODISTILLER_WORKER__POLL_S": "0.2",
        "AUTODISTILLER_WORKER__PROGRESS_EVENT_INTERVAL_S": "0",
        "AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off",
        "AUTODISTILLER_META_LEARNER__USE_SHIPPED": "false",
        "AUTODISTILLER_META_LEARNER__AUTO_REFIT_EVERY": "0",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "app" / "worker_main.py")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie is dead, only not yet reaped


def _state(api: Api, job_id: str) -> dict[str, Any]:
    path = api.services.settings.artifacts_dir / "jobs" / job_id / "checkpoint" / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"step": 0, "pids": []}


def test_sigkill_mid_job_requeues_and_completes_once(api: Api, tmp_path: Path) -> None:
    dataset = api.builtin_dataset()
    config = {"training": {"epochs": 1, "max_steps": 80}}  # 80 steps of 0.05 s
    job = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config}).json()
    log = tmp_path / "worker.log"
    first = _worker(api, log)
    try:
        wait_for(lambda: _state(api, job["id"])["step"] >= 10, timeout=90)
        child = _state(api, job["id"])["pids"][0]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        wait_for(lambda: not _alive(child), timeout=10)  # the training child died with its worker
        frozen = _state(api, job["id"])["step"]
        time.sleep(0.5)
        assert _state(api, job["id"])["step"] == frozen  # no orphan keeps training
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"  # until the lease expires
    finally:
        if first.poll() is None:
            first.kill()
    second = _worker(api, log)
    try:
        done = wait_for(
            lambda: (s := api.get(f"/jobs/{job['id']}").json())["status"] == "succeeded" and s, timeout=90
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert done["attempts"] == 2
    report = api.get(f"/jobs/{job['id']}/artifacts/report.json").json()
    assert report["resume_starts"][0] == 0 and report["resume_starts"][1] >= frozen - 1
    events = api.get(f"/jobs/{job['id']}/events").text
    assert "lease expired" in events
    statuses = [
        json.loads(line[6:])["status"]
        for line in events.splitlines()
        if line.startswith("data: ") and '"status"' in line and "created_at" in line
    ]
    assert statuses == ["queued", "running", "queued", "running", "succeeded"]
    records = api.get("/sweep-records").json()
    assert records["count"] == 1 and records["data"][0]["job_id"] == job["id"]
    assert second.returncode == 0, log.read_text()[-2000:]
