"""/searches over HTTP: create (202), progress over SSE, leaderboard, cancel, ownership, validation."""

from __future__ import annotations

import json
from typing import Any

from tests.app.conftest import Api
from tests.app.test_search_driver import FAST, drive


def _create(api: Api, **fields: Any) -> dict[str, Any]:
    dataset = api.builtin_dataset()
    body = {"dataset_id": dataset["id"], "training": FAST, "student": {"num_layers": 1}, **fields}
    response = api.post("/searches", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/searches/{response.json()['id']}"
    return response.json()


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_search_runs_to_a_leaderboard_and_streams_its_progress(api: Api) -> None:
    created = _create(api, max_runs=4, portfolio_size=2)
    assert created["status"] == "running" and created["rungs"] == [1, 3]
    assert created["request"]["student"]["num_layers"] == 1
    assert created["leaderboard"][0]["source"] == "portfolio"  # the first trial is queued at once
    drive(api.services, created["id"])
    body = api.get(f"/searches/{created['id']}").json()
    assert body["status"] == "succeeded" and body["counts"]["running"] == 0
    board = body["leaderboard"]
    assert len(board) == 4 and board[0]["id"] == body["best_trial"]
    assert board[0]["fidelity"] == 3 and board[0]["job_ids"][-1] == body["best_job_id"]
    # the best trial's job is an ordinary job with its deliverable
    job = api.get(f"/jobs/{body['best_job_id']}").json()
    assert job["status"] == "succeeded" and job["deliverable"]["status"] == "ready"
    assert api.get(f"/jobs/{body['best_job_id']}/artifacts/report_card.json").status_code == 200
    events = _sse(api.get(f"/searches/{created['id']}/events", params={"timeout_s": 5}).text)
    assert events[0] == ("status", {**events[0][1], "status": "running"})
    assert events[-1] == ("end", {"status": "succeeded"})
    states = [d["state"] for kind, d in events if kind == "trial"]
    assert states.count("started") == 4 and "complete" in states
    last_id = api.services.searches.events(created["id"])[-2].id
    resumed = _sse(api.get(f"/searches/{created['id']}/events", headers={"Last-Event-ID": str(last_id)}).text)
    assert [kind for kind, _ in resumed] == ["status", "end"]  # only what came after
    listed = api.get("/searches").json()
    assert listed["count"] == 1 and listed["data"][0]["leaderboard"] is None


def test_cancel_over_http(api: Api) -> None:
    created = _create(api, max_runs=3)
    response = api.post(f"/searches/{created['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    (trial,) = response.json()["leaderboard"]
    assert trial["status"] == "cancelled"
    assert api.get(f"/jobs/{trial['job_ids'][0]}").json()["status"] == "cancelled"
    again = api.post(f"/searches/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    events = _sse(api.get(f"/searches/{created['id']}/events").text)
    assert events[-1] == ("end", {"status": "cancelled"})


def test_another_key_sees_nothing(api: Api) -> None:
    created = _create(api, max_runs=2)
    other = api.as_new_key("write")
    for method, url in (
        ("get", f"/searches/{created['id']}"),
        ("get", f"/searches/{created['id']}/events"),
        ("post", f"/searches/{created['id']}/cancel"),
    ):
        response = getattr(other, method)(url)
        assert response.status_code == 404, (url, response.text)
    assert other.get("/searches").json()["count"] == 0
    mine = _create(other, max_runs=1, portfolio_size=0)  # its own search, and its jobs, are its own
    job_id = mine["leaderboard"][0]["job_ids"][0]
    assert other.get(f"/jobs/{job_id}").status_code == 200
    assert api.as_new_key("write", name="third").get(f"/jobs/{job_id}").status_code == 404
    assert other.get("/searches").json()["count"] == 1


def test_a_budget_is_required(api: Api) -> None:
    dataset = api.builtin_dataset()
    response = api.post("/searches", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422 and "budget" in response.text
    response = api.post("/searches", json={"dataset_id": dataset["id"], "max_runs": 2, "min_epochs": 9})
    assert response.status_code == 422 and "min_epochs" in response.text
