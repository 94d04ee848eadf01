"""End to end with the real engine: a real server process with its worker, an upload, a
recommendation, a tiny distillation job followed over Server-Sent Events to ``succeeded``, the
student archive, and the new sweep record. About a minute on 2 CPU cores."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class Server:
    def __init__(self, base_url: str, key: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.base_url, self.key, self.proc, self.log = base_url, key, proc, log

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.key}, **kw)


def start_server(
    data_dir: Path, env_extra: dict[str, str], *, worker: bool = True, extra_args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Run ``python -m app serve`` on a free loopback port until the generator is closed."""
    port = _free_port()
    env = {**os.environ, "AUTODISTILLER_DATA_DIR": str(data_dir), **env_extra}
    key = _cli("keys", "create", "e2e", env=env).strip().splitlines()[-1]
    log = data_dir.parent / f"server-{port}.log"
    args = [sys.executable, "-m", "app", "serve", "--port", str(port), "--log-level", "warning"]
    if not worker:
        args.append("--no-worker")
    args.extend(extra_args)
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("server did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.3)
    try:
        yield Server(base, key, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path, meta_learner_artifact: Path) -> Iterator[Server]:
    yield from start_server(
        tmp_path / "data",
        {
            "AUTODISTILLER_META_LEARNER__ARTIFACT": str(meta_learner_artifact),
            "AUTODISTILLER_WORKER__TRAIN_THREADS": "2",
        },
    )


def _dataset_csv() -> bytes:
    from models.data import load_builtin

    frame = load_builtin("rt_polarity_200").to_frame("all")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    writer.writerows(zip(frame["text"], frame["label"], strict=True))
    return out.getvalue().encode()


def _follow(client: httpx.Client, job_id: str, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    """Read the job's event stream until it ends."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = None
    with client.stream(
        "GET",
        f"/jobs/{job_id}/events",
        params={"timeout_s": timeout},
        timeout=httpx.Timeout(30, read=timeout + 30),
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line[6:])))
                if kind in ("end", "timeout"):
                    break
    return events


def test_upload_recommend_distill_follow_download_record(server: Server) -> None:
    with server.client(timeout=120) as client:
        upload = client.post(
            "/datasets",
            files={"file": ("polarity.csv", _dataset_csv(), "text/csv")},
            data={"name": "polarity"},
        )
        assert upload.status_code == 201, upload.text
        dataset = upload.json()
        assert dataset["n_train"] > 100 and dataset["meta_features"]["emb_0"] is not None  # embedded for real

        rec = client.post(
            "/recommend", json={"dataset_id": dataset["id"], "student": {"num_layers": 1}, "k": 3}
        )
        assert rec.status_code == 201, rec.text
        recommendation = rec.json()
        assert len(recommendation["items"]) == 3 and recommendation["meta_learner_version"] == 1

        submission = {
            "dataset_id": dataset["id"],
            "recommendation_id": recommendation["id"],
            "rank": 1,
            # enough training that teacher and student are past chance: the int8 export is
            # verified against PyTorch by agreement, which a model with no margins fails at random
            "training": {"epochs": 3, "batch_size": 16, "max_length": 32, "learning_rate": 2e-4},
            "teacher_training": {"epochs": 3, "batch_size": 16, "max_length": 32, "learning_rate": 1e-4},
            "measure_latency": False,
            "idempotency_key": "e2e-1",
        }
        submitted = client.post("/jobs", json=submission)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()

        events = _follow(client, job["id"], timeout=600)
        assert events[-1] == ("end", {"status": "succeeded"}), server.log.read_text()[-3000:]
        statuses = [data["status"] for kind, data in events if kind == "status"]
        assert statuses[0] == "queued" and statuses[-1] == "succeeded" and "running" in statuses
        stages = {data.get("stage") for kind, data in events if kind == "progress"}
        assert "kd" in stages

        done = client.get(f"/jobs/{job['id']}").json()
        assert done["status"] == "succeeded" and 0 < done["metrics"]["ratio"] <= 2
        assert done["kd_config"] == {
            **recommendation["items"][0]["kd_config"],
            "training": done["kd_config"]["training"],
        }
        assert client.post("/jobs", json=submission).json()["id"] == job["id"]

        archive = client.get(f"/jobs/{job['id']}/artifacts/student.tar.gz")
        assert archive.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            names = set(tar.getnames())
        assert "student/config.json" in names and "student/model.safetensors" in names
        report = client.get(f"/jobs/{job['id']}/artifacts/report.json").json()
        assert report["recommendation"]["recommendation_id"] == recommendation["id"]

        # the deliverable: verified ONNX + int8 and the report card, made by the real engine
        deliverable = done["deliverable"]
        assert deliverable["status"] == "ready", deliverable
        assert deliverable["offered"] == ["hf", "onnx", "onnx_int8"] and deliverable["report_card"]
        assert deliverable["summary"]["ratio"] is not None
        onnx = client.get(f"/jobs/{job['id']}/artifacts/student_onnx.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(onnx.content)) as tar:
            names = set(tar.getnames())
        assert {"student_onnx/model.onnx", "student_onnx/model.int8.onnx"} <= names
        export = client.get(f"/jobs/{job['id']}/artifacts/export.json").json()
        assert export["verified"] and export["verification"]["variants"]["onnx_int8"]["passed"]
        card = client.get(f"/jobs/{job['id']}/artifacts/report_card.json").json()
        assert card["recommendation"]["rank"] == 1 and card["models"]["student_int8"]["available"]
        html = client.get(f"/jobs/{job['id']}/artifacts/report_card.html")
        assert html.headers["content-type"].startswith("text/html") and "<script src" not in html.text

        records = client.get("/sweep-records", params={"job_id": job["id"]}).json()
        assert records["count"] == 1
        record = records["data"][0]["record"]
        assert record["ratio"] == pytest.approx(report["ratio"]) and record["run_id"] == job["id"]
        assert record["kd_config"] == done["kd_config"] and record["source"] == "own"
        assert client.get("/meta-learner").json()["records"] == 1
        assert "Traceback" not in client.get(f"/jobs/{job['id']}/logs").text


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_serve_with_two_api_processes_and_an_executor_process(
    tmp_path: Path, meta_learner_artifact: Path
) -> None:
    """``serve --workers 2``: two API processes share the port, jobs run in a separate executor process,
    and SIGTERM stops them all."""
    env = {
        "AUTODISTILLER_META_LEARNER__ARTIFACT": str(meta_learner_artifact),
        "AUTODISTILLER_META_LEARNER__EMBEDDINGS": "off",
        "AUTODISTILLER_WORKER__TRAIN_THREADS": "2",
    }
    servers = start_server(tmp_path / "data", env, extra_args=("--workers", "2"))
    server = next(servers)
    try:
        children = _children(server.proc.pid)
        assert len(children) >= 3, children  # two uvicorn workers and the job executor
        with server.client(timeout=120) as client:
            dataset = client.post("/datasets", data={"builtin": "rt_polarity_200"})
            assert dataset.status_code == 201, dataset.text
            dataset_id = dataset.json()["id"]
            answers = {
                client.post("/recommend", json={"dataset_id": dataset_id, "k": 2}).json()["id"]
                for _ in range(6)
            }
            assert len(answers) == 1  # both processes answer the same question with the same stored answer
            job = client.post(
                "/jobs",
                json={
                    "dataset_id": dataset_id,
                    "kd_config": {
                        "training": {"epochs": 1, "max_steps": 2, "batch_size": 16, "max_length": 32}
                    },
                    "student": {"num_layers": 1},
                    "teacher_training": {"epochs": 1, "batch_size": 16, "max_length": 32},
                    "measure_latency": False,
                    "deliver": False,
                },
            ).json()
            events = _follow(client, job["id"], timeout=300)
            assert events[-1] == ("end", {"status": "succeeded"}), server.log.read_text()[-3000:]
    finally:
        servers.close()
    assert server.proc.returncode is not None
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in children), children


def _alive(pid: int) -> bool:
    """Running (a zombie left to an init that does not reap counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
