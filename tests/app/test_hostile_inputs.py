"""Hostile and absurd inputs (issue 18): each gets the 4xx it should, with a bounded message that
names the field, and never a 5xx or a server path."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
