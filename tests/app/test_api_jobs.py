"""/jobs through the API with the fake runner: submit, follow, artifacts, idempotency, cancel, errors."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import Api

FAST = {"training": {"epochs": 1, "max_steps": 3, "batch_size": 8, "max_length": 32}}


def _submit(api: Api, dataset_id: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"dataset_id": dataset_id, "kd_config": FAST, "student": {"num_layers": 1}, **extra}
    return api.post("/jobs", json=body, headers=headers or {})


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_job_runs_to_success_with_events_artifacts_and_sweep_record(api: Api) -> None:
    dataset = api.builtin_dataset()
    response = _submit(api, dataset["id"])
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"] == f"/jobs/{job['id']}"
    assert job["kd_config"]["training"]["max_steps"] == 3 and job["student"]["num_layers"] == 1
    api.drain()
    done = api.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["error"] is None
    assert 0 < done["metrics"]["ratio"] < 1 and done["metrics"]["metric"] == "accuracy"
    # the last progress the runner sent (delivery's last stage) is on the job, never a stale kd step
    assert done["progress"] == {"stage": "report_card"}
    assert done["artifacts"] == [
        "report.json",
        "learning_curves.png",
        "student.tar.gz",
        "report_card.html",
        "report_card.json",
        "export.json",
        "student_onnx.tar.gz",
    ]
    assert done["deliverable"]["status"] == "ready" and done["deliverable"]["report_card"]
    assert done["deliverable"]["offered"] == ["hf", "onnx", "onnx_int8"]

    events = _sse(api.get(f"/jobs/{job['id']}/events").text)
    statuses = [data["status"] for kind, data in events if kind == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert [d["step"] for k, d in events if k == "progress" and d["stage"] == "kd"] == [1, 2, 3]
    assert events[-1] == ("end", {"status": "succeeded"})
    later = _sse(api.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "2"}).text)
    assert all(kind != "status" or data["status"] != "queued" for kind, data in later)

    report = api.get(f"/jobs/{job['id']}/artifacts/report.json").json()
    assert report["ratio"] == done["metrics"]["ratio"]
    png = api.get(f"/jobs/{job['id']}/artifacts/learning_curves.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    archive = api.get(f"/jobs/{job['id']}/artifacts/student.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        assert "student/config.json" in tar.getnames()
    card = api.get(f"/jobs/{job['id']}/artifacts/report_card.html")
    assert card.headers["content-type"].startswith("text/html")
    assert card.headers["content-disposition"].startswith("inline") and "report card" in card.text
    onnx = api.get(f"/jobs/{job['id']}/artifacts/student_onnx.tar.gz")
    assert onnx.headers["content-disposition"].startswith("attachment")
    with tarfile.open(fileobj=io.BytesIO(onnx.content)) as tar:
        assert {"student_onnx/model.onnx", "student_onnx/model.int8.onnx"} <= set(tar.getnames())
    assert api.get(f"/jobs/{job['id']}/artifacts/export.json").json()["status"] == "ok"
    assert api.get(f"/jobs/{job['id']}/artifacts").json()["count"] == 7
    stages = [d.get("stage") for k, d in events if k == "progress"]
    assert stages[-2:] == ["export", "report_card"]

    records = api.get("/sweep-records", params={"job_id": job["id"]}).json()
    assert records["count"] == 1
    record = records["data"][0]
    assert record["source"] == "own" and record["code_version"] == "test" and record["seed"] == 42
    assert record["record"]["run_id"] == job["id"] and record["record"]["ratio"] == pytest.approx(
        report["ratio"]
    )
    assert record["record"]["meta_features"]["n_train"] == dataset["n_train"]
    assert record["record"]["meta_features"]["teacher_score"] == 0.8
    assert "attempt 1 started" in api.get(f"/jobs/{job['id']}/events").text


def test_job_from_a_recommendation(api: Api) -> None:
    dataset = api.builtin_dataset()
    rec = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 3}).json()
    response = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "recommendation_id": rec["id"], "rank": 2}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kd_config"] == rec["items"][1]["kd_config"] and job["rank"] == 2
    assert job["student"] == rec["items"][1]["student"]
    bad_rank = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "recommendation_id": rec["id"], "rank": 9}
    )
    assert bad_rank.status_code == 422
    override = api.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "recommendation_id": rec["id"],
            "rank": 1,
            "teacher": "mpnet-base",
        },
    )
    assert override.status_code == 422
    neither = api.post("/jobs", json={"dataset_id": dataset["id"]})
    assert neither.status_code == 422 and neither.json()["error"]["code"] == "validation_error"


def test_job_from_a_recommendation_records_it_in_the_report(api: Api) -> None:
    dataset = api.builtin_dataset()
    rec = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 2}).json()
    job = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "recommendation_id": rec["id"], "rank": 2}
    ).json()
    api.drain()
    report = api.get(f"/jobs/{job['id']}/artifacts/report.json").json()
    source = report["recommendation"]
    assert source["recommendation_id"] == rec["id"] and source["rank"] == 2
    assert source["meta_learner_version"] == rec["meta_learner_version"]
    assert source["predicted_ratio"] == rec["items"][1]["predicted_ratio"]
    card = api.get(f"/jobs/{job['id']}/artifacts/report_card.json").json()
    assert card["recommendation"] == source


def test_a_failed_export_is_reported_on_the_job(api: Api) -> None:
    dataset = api.builtin_dataset()
    body = {"training": {**FAST["training"], "seed": 16}}
    job = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": body, "student": {"num_layers": 1}}
    ).json()
    api.drain()
    done = api.get(f"/jobs/{job['id']}").json()
    # the student was trained: the job succeeds, and its deliverable says what failed
    assert done["status"] == "succeeded" and done["error"] is None
    deliverable = done["deliverable"]
    assert deliverable["status"] == "failed" and deliverable["error"]["code"] == "export_failed", done
    assert "int8 agreement" in deliverable["error"]["message"]
    assert deliverable["offered"] == ["hf", "onnx"] and deliverable["report_card"]
    assert "student_onnx.tar.gz" in done["artifacts"] and "report_card.html" in done["artifacts"]
    onnx = api.get(f"/jobs/{job['id']}/artifacts/student_onnx.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(onnx.content)) as tar:
        names = set(tar.getnames())
    assert "student_onnx/model.onnx" in names and "student_onnx/model.int8.onnx" not in names
    assert api.get(f"/jobs/{job['id']}/artifacts/export.json").json()["status"] == "failed"
    events = _sse(api.get(f"/jobs/{job['id']}/events").text)
    stages = [data["stage"] for kind, data in events if kind == "progress"]
    assert stages[-3:] == ["export", "export_failed", "report_card"]


def test_delivery_can_be_skipped_and_says_so(api: Api) -> None:
    dataset = api.builtin_dataset()
    job = _submit(api, dataset["id"], deliver=False).json()
    api.drain()
    done = api.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["deliverable"]["status"] == "skipped"
    assert done["artifacts"] == ["report.json", "learning_curves.png", "student.tar.gz"]
    missing = api.get(f"/jobs/{job['id']}/artifacts/report_card.html")
    assert missing.status_code == 409


def test_idempotent_resubmission(api: Api) -> None:
    dataset = api.builtin_dataset()
    first = _submit(api, dataset["id"], idempotency_key="run-1")
    again = _submit(api, dataset["id"], idempotency_key="run-1")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": {}, "idempotency_key": "run-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert api.get("/jobs").json()["count"] == 1
    header = _submit(api, dataset["id"], headers={"Idempotency-Key": "run-1"})
    assert header.status_code == 200 and header.json()["id"] == first.json()["id"]
    clash = _submit(api, dataset["id"], idempotency_key="a", headers={"Idempotency-Key": "b"})
    assert clash.status_code == 422


def test_concurrent_submissions_with_one_key_make_one_job(api: Api) -> None:
    dataset = api.builtin_dataset()
    results: list[Any] = []

    def submit() -> None:
        results.append(_submit(api, dataset["id"], idempotency_key="same"))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 200, 200, 202]
    assert len({r.json()["id"] for r in results}) == 1
    assert api.get("/jobs").json()["count"] == 1


def test_cancel_queued_job_and_finished_job(api: Api) -> None:
    dataset = api.builtin_dataset()
    job = _submit(api, dataset["id"]).json()
    cancelled = api.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    assert api.post("/jobs/nope/cancel").status_code == 404
    api.drain()  # nothing to run
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    artifacts = api.get(f"/jobs/{job['id']}/artifacts/report.json")
    assert artifacts.status_code == 409 and artifacts.json()["error"]["code"] == "artifact_not_ready"


@pytest.mark.parametrize(("seed", "code"), [(13, "invalid_config"), (14, "runner_failed")])
def test_runner_failures_are_recorded_with_a_code(api: Api, seed: int, code: str) -> None:
    dataset = api.builtin_dataset()
    config = {"training": {**FAST["training"], "seed": seed}}
    job = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config}).json()
    api.drain()
    failed = api.get(f"/jobs/{job['id']}").json()
    assert failed["status"] == "failed" and failed["error"]["code"] == code and failed["error"]["message"]
    assert api.get("/sweep-records").json()["count"] == 0
    assert "Traceback" in api.get(f"/jobs/{job['id']}/logs").text or code == "invalid_config"


def test_submission_is_validated_before_the_job_exists(api: Api, tmp_path: Path) -> None:
    dataset = api.builtin_dataset()
    assert _submit(api, "missing").status_code == 404
    regression_only = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": {"intermediate": {"loss": "mi"}}}
    )
    assert regression_only.status_code == 422
    deep = _submit(api, dataset["id"], student={"num_layers": 9})
    assert deep.status_code == 422
    outside = _submit(api, dataset["id"], teacher=str(tmp_path))
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "path_not_allowed"
    traversal = _submit(api, dataset["id"], teacher="../../etc")
    assert traversal.status_code == 403
    mlm = api.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "kd_config": {"augmentation": {"pipeline": ["contextual"], "mlm_model": "/etc"}},
        },
    )
    assert mlm.status_code == 403
    budget = _submit(api, dataset["id"], resources={"time_budget_s": 10**9})
    assert budget.status_code == 422
    unknown_key = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": {"intermediate": {"loss": "nope"}}}
    )
    assert unknown_key.status_code == 422
    assert api.get("/jobs").json()["count"] == 0


def test_regression_dataset_refuses_ce_kd(api: Api) -> None:
    data = b"text,score\n" + b"".join(
        f"text {i} and more {i * 13},{i % 7 / 7}\n".encode() for i in range(120)
    )
    dataset = api.post(
        "/datasets",
        files={"file": ("s.csv", data, "text/csv")},
        data={"task_kind": "regression", "label_column": "score"},
    ).json()
    response = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": {"prediction": {"loss": "ce"}}}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_config"


def test_list_filters_and_pages(api: Api) -> None:
    dataset = api.builtin_dataset()
    ids = [_submit(api, dataset["id"]).json()["id"] for _ in range(3)]
    api.post(f"/jobs/{ids[0]}/cancel")
    page = api.get("/jobs", params={"limit": 2}).json()
    assert page["count"] == 3 and len(page["data"]) == 2
    assert api.get("/jobs", params={"offset": 2, "limit": 2}).json()["data"][0]["id"] == ids[0]
    queued = api.get("/jobs", params={"status": "queued"}).json()
    assert queued["count"] == 2 and {j["id"] for j in queued["data"]} == set(ids[1:])
    assert api.get("/jobs", params={"dataset_id": "other"}).json()["count"] == 0
    assert api.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert api.get("/jobs", params={"limit": 0}).status_code == 422


def test_dataset_in_use_cannot_be_deleted(api: Api) -> None:
    dataset = api.builtin_dataset()
    _submit(api, dataset["id"])
    response = api.delete(f"/datasets/{dataset['id']}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "dataset_in_use"
    api.drain()
    assert api.delete(f"/datasets/{dataset['id']}").status_code == 204


def test_unknown_artifact_name_and_logs_of_unknown_job(api: Api) -> None:
    assert api.get("/jobs/x/artifacts/../../etc/passwd").status_code == 404
    assert api.get("/jobs/x/artifacts/secret.txt").status_code in (404, 422)
    assert api.get("/jobs/x/logs").status_code == 404
    assert api.get("/jobs/x/events").status_code == 404
