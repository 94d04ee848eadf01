"""The Ray executor against a local Ray head started by the test, on loopback only.

The head and the worker run inside fresh network and PID namespaces (``unshare``): Ray can only
bind to the loopback interface there, and all of its processes end with the namespace.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.app.conftest import Api
from tests.app.test_worker_local import wait_for

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")

# In the default run: both variants (SQLite, Postgres) take under a minute here. A Ray head start
# can take minutes on a 2-core machine that runs something else besides, hence the long waits.
pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    return probe.returncode == 0


def _reachable_from_namespace(url: str) -> str:
    """The database URL for the worker inside the network namespace, which has a loopback of its
    own: a Postgres server on this machine's loopback is reached through its Unix socket instead."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.host not in ("127.0.0.1", "localhost"):
        return url
    socket_dir = next(
        (d for d in POSTGRES_SOCKET_DIRS if (Path(d) / f".s.PGSQL.{parsed.port or 5432}").exists()), None
    )
    if socket_dir is None:
        pytest.skip("the Postgres server has no Unix socket the namespaced Ray worker could reach")
    return parsed.set(host=None, query={**parsed.query, "host": socket_dir}).render_as_string(
        hide_password=False
    )


def test_ray_executor_runs_mirrors_and_cancels(api: Api, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    if not _can_unshare():
        pytest.skip("needs unshare(1) with network and PID namespaces (root) to keep Ray on loopback")
    settings = api.services.settings
    dataset = api.builtin_dataset()
    quick = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": {"training": {"epochs": 1, "max_steps": 5}}}
    ).json()
    slow = api.post(
        "/jobs",
        json={"dataset_id": dataset["id"], "kd_config": {"training": {"epochs": 1, "max_steps": 2000}}},
    ).json()
    stop_file = tmp_path / "stop"
    env = {
        **os.environ,
        "AUTODISTILLER_DATA_DIR": str(settings.data_dir),
        "AUTODISTILLER_DATABASE_URL": _reachable_from_namespace(settings.resolved_database_url),
        "AUTODISTILLER_EXECUTOR": "ray",
        "AUTODISTILLER_RAY_ADDRESS": f"127.0.0.1:{_free_port()}",
        "AUTODISTILLER_WORKER__SLOTS": "2",
        "AUTODISTILLER_WORKER__HEARTBEAT_S": "0.5",
        "AUTODISTILLER_WORKER__STOP_GRACE_S": "5",
        "AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off",
        "AUTODISTILLER_META_LEARNER__USE_SHIPPED": "false",
        "AUTODISTILLER_META_LEARNER__AUTO_REFIT_EVERY": "0",
    }
    port = env["AUTODISTILLER_RAY_ADDRESS"].rsplit(":", 1)[1]
    ray_temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    script = (
        f"ip link set lo up && exec {sys.executable} {ROOT / 'tests/app/ray_worker_main.py'} "
        f"{port} {stop_file} {ray_temp}"
    )
    log = (tmp_path / "ray.log").open("wb")
    proc = subprocess.Popen(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        done = wait_for(
            lambda: (s := api.get(f"/jobs/{quick['id']}").json())["status"] in ("succeeded", "failed") and s,
            timeout=240,
            interval=0.5,
        )
        assert done["status"] == "succeeded", (tmp_path / "ray.log").read_text()[-3000:]
        assert "(ray)" in api.get(f"/jobs/{quick['id']}/events").text  # ran on the Ray backend
        assert done["metrics"]["ratio"] > 0 and done["deliverable"]["status"] == "ready"
        assert api.get(f"/jobs/{quick['id']}/artifacts/report.json").json()["steps_done"] == 5
        assert api.get("/sweep-records", params={"job_id": quick["id"]}).json()["count"] == 1
        wait_for(
            lambda: (api.get(f"/jobs/{slow['id']}").json().get("progress") or {}).get("step", 0) >= 3,
            timeout=60,
        )
        api.post(f"/jobs/{slow['id']}/cancel")
        cancelled = wait_for(
            lambda: (s := api.get(f"/jobs/{slow['id']}").json())["status"] == "cancelled" and s, timeout=60
        )
        assert cancelled["progress"]["step"] < 2000
    finally:
        stop_file.touch()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # unshare's child is PID 1 of its namespace: killing it ends every Ray process
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(ray_temp, ignore_errors=True)
