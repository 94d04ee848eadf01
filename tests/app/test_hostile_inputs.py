"""Hostile and absurd inputs (issue 18): each gets the 4xx it should, with a bounded message that
names the field, and never a 5xx or a server path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.domain import JobStatus
from tests.app.conftest import Api

FAST = {"training": {"epochs": 1, "max_steps": 1, "batch_size": 8, "max_length": 32}}


def _error(response: Any) -> dict[str, Any]:
    return response.json()["error"]


def _locs(response: Any) -> list[str]:
    return [".".join(map(str, d["loc"])) for d in _error(response)["details"] or []]


# ---- idempotency ----------------------------------------------------------------------------------
def test_idempotency_compares_the_normalised_request(api: Api) -> None:
    dataset = api.builtin_dataset()
    terse = {"dataset_id": dataset["id"], "kd_config": FAST, "idempotency_key": "same-job"}
    first = api.post("/jobs", json=terse)
    assert first.status_code == 202, first.text
    budget = api.services.settings.limits.default_time_budget_s
    spelled_out = {
        "dataset_id": dataset["id"],
        "kd_config": {
            "augmentation": {"pipeline": [], "aug_p": 0.1, "mode": "pipeline"},
            "mixup": {"enabled": False, "alpha": 0.4},
            "prediction": {"loss": "ce", "temperature": 1},
            "intermediate": {"loss": "none", "alpha": None, "strategy": "skip"},
            "weights": {"kd": 1, "intermediate": 1.0, "hard": 0},
            "training": {**FAST["training"], "seed": 42, "learning_rate": 5e-5},
        },
        "teacher": "minilm-l6",
        "student": {"num_layers": 2, "fresh": False},
        "deliver": True,
        "resources": {"gpu": False, "time_budget_s": budget},
    }
    again = api.post("/jobs", json=spelled_out, headers={"Idempotency-Key": "same-job"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    different = api.post(
        "/jobs", json={**spelled_out, "student": {"num_layers": 1}, "idempotency_key": "same-job"}
    )
    assert different.status_code == 409 and _error(different)["code"] == "idempotency_conflict"


@pytest.mark.parametrize("key", [b"\xb2", b"a b", b"../../etc/passwd", b"x" * 201, b"k\x7f", b"\xff\xfe"])
def test_hostile_idempotency_key_headers_are_422(api: Api, key: bytes) -> None:
    dataset = api.builtin_dataset()
    body = {"dataset_id": dataset["id"], "kd_config": FAST}
    response = api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    assert response.status_code == 422, response.text
    assert "idempotency-key" in " ".join(_locs(response)).lower()


# ---- the event stream ----------------------------------------------------------------------------
def _finished_job(api: Api) -> str:
    dataset = api.builtin_dataset()
    response = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": FAST})
    assert response.status_code == 202, response.text
    api.drain()
    return response.json()["id"]


@pytest.mark.parametrize("after", ["99999999999999999999", "9223372036854775808", "-1", "1e3", "²"])
def test_events_after_out_of_range_is_422_before_the_stream(api: Api, after: str) -> None:
    job_id = _finished_job(api)
    response = api.get(f"/jobs/{job_id}/events", params={"after": after})
    assert response.status_code == 422, response.text
    assert _locs(response) == ["query.after"]


@pytest.mark.parametrize(
    "header", [b"99999999999999999999", b"9223372036854775808", b"\xb2", b"-1", b"1.5", b"0x10"]
)
def test_events_last_event_id_is_validated_before_the_stream(api: Api, header: bytes) -> None:
    job_id = _finished_job(api)
    response = api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": header})
    assert response.status_code == 422, response.text
    error = _error(response)
    assert error["code"] in ("invalid_request", "validation_error")
    assert "last-event-id" in (error["message"] + " ".join(_locs(response))).lower()


def test_events_largest_valid_id_is_an_empty_stream_that_ends(api: Api) -> None:
    job_id = _finished_job(api)
    for kw in ({"params": {"after": str(2**63 - 1)}}, {"headers": {"Last-Event-ID": str(2**63 - 1)}}):
        response = api.get(f"/jobs/{job_id}/events", **kw)
        assert response.status_code == 200
        events = [b for b in response.text.split("\n\n") if b.startswith("id:")]
        assert events == [] and "event: end" in response.text
    blank = api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": ""})
    assert blank.status_code == 200 and blank.text.count("event: status") == 3
    assert json.loads(blank.text.rsplit("data: ", 1)[1]) == {"status": "succeeded"}


# ---- model paths ---------------------------------------------------------------------------------
def _model_folder(api: Api, name: str) -> Any:
    root = api.services.settings.resolved_model_roots[0]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _path_bodies(dataset_id: str, path: str) -> list[tuple[str, dict[str, Any], str]]:
    """(route, body, the field the answer must name) for every model path field."""
    kd = {**FAST}
    return [
        ("/recommend", {"dataset_id": dataset_id, "teacher": path}, "teacher"),
        ("/recommend", {"dataset_id": dataset_id, "student": {"checkpoint": path}}, "checkpoint"),
        ("/jobs", {"dataset_id": dataset_id, "kd_config": kd, "teacher": path}, "teacher"),
        ("/jobs", {"dataset_id": dataset_id, "kd_config": kd, "student": {"checkpoint": path}}, "checkpoint"),
        (
            "/jobs",
            {"dataset_id": dataset_id, "kd_config": {**kd, "augmentation": {"mlm_model": path}}},
            "mlm_model",
        ),
        (
            "/jobs",
            {
                "dataset_id": dataset_id,
                "kd_config": {**kd, "augmentation": {"translation_models": ["en-de", path]}},
            },
            "translation_models",
        ),
        ("/sweeps", {"dataset_ids": [dataset_id], "budget": 1, "teacher": path}, "teacher"),
        (
            "/sweeps",
            {"dataset_ids": [dataset_id], "budget": 1, "students": [{"checkpoint": path}]},
            "checkpoint",
        ),
    ]


@pytest.mark.parametrize("path", ["mod\x00els/x", "a\nb", "x\x1b[31m", "\x7f"])
def test_control_characters_in_any_model_path_field_are_422_naming_the_field(api: Api, path: str) -> None:
    dataset = api.builtin_dataset()
    for route, body, field in _path_bodies(dataset["id"], path):
        response = api.post(route, json=body)
        assert response.status_code == 422, (route, field, response.text)
        assert field in json.dumps(_error(response)), (route, field, response.text)


def test_the_catalog_refuses_control_characters_itself(services: Any) -> None:
    from app.errors import InvalidRequestError
    from app.services.model_catalog import confine

    with pytest.raises(InvalidRequestError, match="teacher"):
        confine("x\x00y", services.settings.resolved_model_roots, "teacher")
    with pytest.raises(InvalidRequestError, match="not a usable model path"):
        confine("a" * 5000, services.settings.resolved_model_roots, "teacher")  # ENAMETOOLONG


def test_a_path_outside_the_roots_is_403_without_any_server_path(api: Api, tmp_path: Any) -> None:
    dataset = api.builtin_dataset()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    root = str(api.services.settings.resolved_model_roots[0])
    for path in ("../../../etc", "/etc", "../elsewhere"):
        for route, body, field in _path_bodies(dataset["id"], path)[:4]:
            response = api.post(route, json=body)
            assert response.status_code == 403, (route, path, response.text)
            text = response.text
            assert root not in text and str(api.services.settings.data_dir) not in text
            assert field.split(".")[-1] in _error(response)["message"]


def test_a_model_folder_is_shown_by_its_relative_name(api: Api) -> None:
    folder = _model_folder(api, "teachers/tiny")
    dataset = api.builtin_dataset()
    response = api.post("/recommend", json={"dataset_id": dataset["id"], "teacher": "teachers/tiny", "k": 1})
    assert response.status_code in (200, 201), response.text
    assert response.json()["teacher"]["name"] == "teachers/tiny"
    assert str(folder) not in response.text and str(api.services.settings.data_dir) not in response.text


def test_an_implausible_model_config_is_refused(api: Api) -> None:
    folder = _model_folder(api, "huge")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 10**12}))
    dataset = api.builtin_dataset()
    response = api.post("/recommend", json={"dataset_id": dataset["id"], "teacher": "huge"})
    assert response.status_code == 422 and "vocab_size" in _error(response)["message"]


# ---- absurd values and unbounded strings ---------------------------------------------------------
@pytest.mark.parametrize(
    "kd_config",
    [
        '{"prediction": {"temperature": 1e400}}',
        '{"mixup": {"enabled": true, "alpha": 1e400}}',
        '{"prediction": {"temperature": 1000}}',
        '{"training": {"seed": 99999999999999999999}}',
    ],
)
def test_absurd_kd_config_values_are_422(api: Api, kd_config: str) -> None:
    dataset = api.builtin_dataset()
    body = f'{{"dataset_id": "{dataset["id"]}", "kd_config": {kd_config}}}'
    response = api.post("/jobs", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    field = next(k for k in ("temperature", "alpha", "seed") if k in kd_config)
    assert any(field in loc for loc in _locs(response))
    assert api.get("/jobs").json()["count"] == 0


def test_a_fresh_student_of_absurd_size_gets_no_recommendation(api: Api) -> None:
    dataset = api.builtin_dataset()
    student = {"fresh": True, "num_layers": 2, "hidden_size": 10**12}
    response = api.post("/recommend", json={"dataset_id": dataset["id"], "student": student})
    assert response.status_code == 422 and any("hidden_size" in loc for loc in _locs(response))


def test_unknown_inline_meta_feature_keys_are_named_in_a_bounded_422(api: Api) -> None:
    meta = {f"bogus_feature_{i:06d}": 1.0 for i in range(300_000)}
    meta["n_train"] = 100.0
    body = {"meta_features": meta, "task_kind": "classification"}
    response = api.post("/recommend", json=body)
    assert response.status_code == 422, response.text[:500]
    assert "bogus_feature_000000" in response.text and "299995 more" in response.text
    assert len(response.content) < 2000
    typo = api.post("/recommend", json={"meta_features": {"n_trian": 10.0}, "task_kind": "classification"})
    assert typo.status_code == 422 and "n_trian" in typo.text


def test_computed_meta_features_are_all_known_keys(api: Api) -> None:
    from app.schemas.recommend import META_FEATURE_KEYS

    dataset = api.builtin_dataset()
    assert set(dataset["meta_features"]) <= META_FEATURE_KEYS
    inline = {k: v for k, v in dataset["meta_features"].items()}
    response = api.post("/recommend", json={"meta_features": inline, "task_kind": "classification", "k": 1})
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/recommend", {"dataset_id": "d" * 1_000_000}),
        ("/jobs", {"dataset_id": "d" * 1_000_000, "kd_config": {}}),
        ("/sweeps", {"dataset_ids": ["d" * 1_000_000], "budget": 1}),
        ("/sweeps", {"dataset_ids": ["d"], "budget": 1, "name": "n" * 1_000_000}),
        ("/jobs", {"dataset_id": "d", "kd_config": {}, "recommendation_id": "r" * 1_000_000, "rank": 1}),
    ],
)
def test_long_ids_are_refused_without_being_echoed(api: Api, route: str, body: dict[str, Any]) -> None:
    response = api.post(route, json=body)
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) < 5000


def test_a_long_id_in_the_path_is_not_echoed_whole(api: Api) -> None:
    response = api.get("/jobs/" + "j" * 60_000)
    assert response.status_code in (404, 414, 422)
    assert len(response.content) < 5000
    assert "more characters" in response.json()["error"]["message"]


# ---- server paths --------------------------------------------------------------------------------
def _assert_no_server_path(api: Api, text: str, where: str) -> None:
    settings = api.services.settings
    for folder in (settings.data_dir, *settings.resolved_model_roots):
        assert str(folder) not in text and str(folder.resolve()) not in text, where
    assert "/tmp/" not in text, where  # the test's folders all live under the temporary folder


def test_served_artifacts_logs_and_events_carry_no_server_path(api: Api) -> None:
    import io
    import tarfile

    settings = api.services.settings
    job_id = _finished_job(api)
    run = api.services.artifacts.job_dir(job_id)
    dataset_file = settings.data_dir / "datasets" / "upload.csv"
    teacher = settings.resolved_model_roots[0] / "teachers" / "tiny"
    # what an engine that wrote absolute paths left in the run folder (older runs did)
    report = json.loads((run / "report.json").read_text())
    report.update(
        teacher_path=str(settings.data_dir / "cache" / "teachers" / "k"), spec={"dataset": str(dataset_file)}
    )
    (run / "report.json").write_text(json.dumps(report))
    (run / "report_card.json").write_text(json.dumps({"run_dir": str(run), "teacher": str(teacher)}))
    (run / "report_card.html").write_text(f"<p>run {run}</p><p>{json.dumps(str(teacher))}</p>")
    (run / "student" / "config.json").write_text(
        json.dumps({"_name_or_path": str(teacher), "id2label": {"0": "/r/x"}})
    )
    with (run / "job.log").open("a") as log:
        log.write(f"Traceback: File {settings.data_dir}/cache/x.py, reading {dataset_file}\n")
    for name in ("report.json", "report_card.json", "report_card.html"):
        response = api.get(f"/jobs/{job_id}/artifacts/{name}")
        assert response.status_code == 200 and int(response.headers["content-length"]) == len(
            response.content
        )
        _assert_no_server_path(api, response.text, name)
    assert (
        api.get(f"/jobs/{job_id}/artifacts/report.json").json()["spec"]["dataset"]
        == "<data_dir>/datasets/upload.csv"
    )
    assert "teachers/tiny" in api.get(f"/jobs/{job_id}/artifacts/report_card.json").json()["teacher"]
    archive = api.get(f"/jobs/{job_id}/artifacts/student.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        config = json.loads(tar.extractfile("student/config.json").read())  # type: ignore[union-attr]
    assert config == {"_name_or_path": "tiny", "id2label": {"0": "/r/x"}}
    logs = api.get(f"/jobs/{job_id}/logs")
    assert "<data_dir>/cache/x.py" in logs.text
    _assert_no_server_path(api, logs.text, "logs")


def test_a_failed_jobs_message_carries_no_server_path(api: Api) -> None:
    settings = api.services.settings
    store = api.services.store
    dataset = api.builtin_dataset()
    job = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": FAST}).json()
    store.jobs.claim("w1", lease_s=30, gpu_ok=False, kinds=["distill"])
    message = f"FileNotFoundError: [Errno 2] No such file: '{settings.data_dir / 'datasets' / 'gone.csv'}'"
    store.jobs.transition(
        job["id"], JobStatus.FAILED, worker_id="w1", error_code="runner_failed", error_message=message
    )
    shown = api.get(f"/jobs/{job['id']}")
    assert "'<data_dir>/datasets/gone.csv'" in shown.json()["error"]["message"]
    _assert_no_server_path(api, shown.text, "job")
    _assert_no_server_path(api, api.get("/jobs").text, "job list")
    events = api.get(f"/jobs/{job['id']}/events", params={"timeout_s": 1})
    assert "gone.csv" in events.text
    _assert_no_server_path(api, events.text, "events")


def test_error_messages_that_echo_a_server_path_are_scrubbed(api: Api) -> None:
    root = api.services.settings.resolved_model_roots[0]
    (root / "empty").mkdir(parents=True, exist_ok=True)
    dataset = api.builtin_dataset()
    for teacher in (str(root / "empty"), str(api.services.settings.data_dir / "datasets")):
        response = api.post("/recommend", json={"dataset_id": dataset["id"], "teacher": teacher})
        assert response.status_code in (403, 422), response.text
        _assert_no_server_path(api, response.text, teacher)


def test_inline_meta_features_of_absurd_magnitude_are_422(api: Api) -> None:
    body = {"meta_features": {"n_train": 1e300}, "task_kind": "classification"}
    response = api.post("/recommend", json=body)
    assert response.status_code == 422 and "n_train" in response.text
