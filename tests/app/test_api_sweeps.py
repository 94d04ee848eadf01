"""/sweeps with the fake runner: a sweep is a batch of ordinary jobs, resumable by run key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.app.conftest import Api, make_settings

FAST = {"epochs": 1, "max_steps": 2, "batch_size": 8, "max_length": 32}


def _body(dataset_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "dataset_ids": [dataset_id],
        "students": [{"num_layers": 1}, {"num_layers": 2}],
        "budget": 3,
        "training": FAST,
        **extra,
    }


def _jobs(api: Api) -> int:
    return api.get("/jobs", params={"limit": 1}).json()["count"]


def test_sweep_queues_one_job_per_run_and_reports_progress(api: Api) -> None:
    dataset = api.builtin_dataset()
    response = api.post("/sweeps", json=_body(dataset["id"], name="tiny"))
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert response.headers["location"] == f"/sweeps/{sweep['id']}"
    assert sweep["name"] == "tiny" and sweep["n_runs"] == 6 and len(set(sweep["job_ids"])) == 6
    assert sweep["counts"]["queued"] == 6 and not sweep["done"] and sweep["best"] is None
    assert [r["position"] for r in sweep["runs"]] == [0, 0, 1, 1, 2, 2]  # groups interleaved
    assert {r["student"] for r in sweep["runs"]} == {"derived:1", "derived:2"}
    job = api.get(f"/jobs/{sweep['job_ids'][0]}").json()  # an ordinary job
    assert (
        job["kd_config"] == sweep["runs"][0]["kd_config"] and job["kd_config"]["training"]["max_steps"] == 2
    )

    api.drain()
    done = api.get(f"/sweeps/{sweep['id']}").json()
    assert done["done"] and done["counts"]["succeeded"] == 6 and done["counts"]["queued"] == 0
    ratios = [r["ratio"] for r in done["runs"]]
    assert all(0 < r < 1 for r in ratios) and done["best"]["ratio"] == max(ratios)
    listed = api.get("/sweeps").json()
    assert listed["count"] == 1 and listed["data"][0]["runs"] is None and listed["data"][0]["done"]

    records = api.get(f"/sweeps/{sweep['id']}/records").json()
    assert records["count"] == 6
    assert {r["raw"]["run_key"] for r in records["data"]} == {r["run_key"] for r in done["runs"]}
    assert all(r["source"] == "own" and r["code_version"] and r["kd_config"] for r in records["data"])


def test_posting_the_same_sweep_again_repeats_nothing(api: Api) -> None:
    dataset = api.builtin_dataset()
    first = api.post("/sweeps", json=_body(dataset["id"])).json()
    while_queued = api.post("/sweeps", json=_body(dataset["id"])).json()
    assert while_queued["id"] != first["id"] and while_queued["job_ids"] == first["job_ids"]
    api.drain()
    again = api.post("/sweeps", json=_body(dataset["id"]))
    assert again.status_code == 202
    body = again.json()
    assert body["job_ids"] == first["job_ids"] and body["done"] and body["counts"]["succeeded"] == 6
    assert _jobs(api) == 6
    bigger = api.post("/sweeps", json=_body(dataset["id"], budget=4)).json()  # one more per student
    # the grid order is a prefix: a bigger budget extends the sweep by the next pipelines only
    assert bigger["counts"]["succeeded"] == 6 and bigger["counts"]["queued"] == 2 and _jobs(api) == 8
    other_seed = api.post("/sweeps", json=_body(dataset["id"], training={**FAST, "seed": 7})).json()
    assert other_seed["counts"]["queued"] == 6  # the training seed is part of every run key


def test_failed_runs_get_new_jobs_when_the_sweep_is_resumed(api: Api) -> None:
    dataset = api.builtin_dataset()
    crash = _body(dataset["id"], students=[{"num_layers": 1}], budget=2, training={**FAST, "seed": 14})
    first = api.post("/sweeps", json=crash).json()
    api.drain()
    assert api.get(f"/sweeps/{first['id']}").json()["counts"]["failed"] == 2
    second = api.post("/sweeps", json=crash).json()
    assert second["counts"]["queued"] == 2 and not set(second["job_ids"]) & set(first["job_ids"])


def test_imported_records_answer_runs_without_jobs(api: Api, tmp_path: Path) -> None:
    from app.schemas.sweeps import SweepCreate, SweepPublic
    from app.services.container import Services

    dataset = api.builtin_dataset()
    sweep = api.post("/sweeps", json=_body(dataset["id"])).json()
    api.drain()
    records = api.get(f"/sweeps/{sweep['id']}/records").json()["data"]
    assert api.services.sweeps.import_records(records) == 0  # every run key is known already

    fresh = Services.create(make_settings(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}"))
    try:
        assert fresh.sweeps.import_records(records) == 6
        assert fresh.sweeps.import_records(records) == 0
        dataset2 = fresh.sweeps.builtin_dataset("rt_polarity_200")
        assert fresh.sweeps.builtin_dataset("rt_polarity_200") == dataset2  # registered once
        created = fresh.sweeps.create(SweepCreate.model_validate(_body(dataset2.id)))
        resumed = SweepPublic.of(*fresh.sweeps.get(created.id))
        assert resumed.counts["recorded"] == 6 and resumed.job_ids == [] and resumed.done
        assert resumed.best is not None and resumed.best.ratio == max(r["ratio"] for r in records)
        assert fresh.store.jobs.list()[1] == 0
        assert len(fresh.sweeps.records(created.id)) == 6
    finally:
        fresh.close()


def test_bad_sweeps_are_refused_before_any_job_exists(api: Api) -> None:
    dataset = api.builtin_dataset()
    assert api.client.post("/sweeps", json=_body(dataset["id"])).status_code == 401
    cases = [
        (_body("nope"), 404, "not_found"),
        (_body(dataset["id"], dataset_ids=[dataset["id"], dataset["id"]]), 422, "invalid_request"),
        (_body(dataset["id"], budget=0), 422, "validation_error"),
        (_body(dataset["id"], space="bayes"), 422, "validation_error"),
        (_body(dataset["id"], grid={"intermediate_losses": ["l2"]}), 422, "validation_error"),
        (_body(dataset["id"], grid={"mi_alphas": [1.5]}), 422, "validation_error"),
        (_body(dataset["id"], students=[{"num_layers": 9}]), 422, "invalid_request"),
    ]
    for body, status, code in cases:
        response = api.post("/sweeps", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code
    assert _jobs(api) == 0 and api.get("/sweeps").json()["count"] == 0


def test_a_restricted_grid_sweeps_only_its_options(api: Api) -> None:
    dataset = api.builtin_dataset()
    grid = {
        "intermediate_losses": ["mi"],
        "mi_alphas": [0.5, 0.9],
        "strategies": ["skip"],
        "kd_losses": ["ce"],
        "mixup": [False],
        "max_pipeline_length": 0,
    }
    sweep = api.post(
        "/sweeps", json=_body(dataset["id"], students=[{"num_layers": 1}], budget=10, grid=grid)
    ).json()
    assert sweep["n_runs"] == 2  # the whole space: two alphas
    assert sorted(r["kd_config"]["intermediate"]["alpha"] for r in sweep["runs"]) == [0.5, 0.9]


def test_sweep_command_submits_to_a_server_and_exports_records(
    api: Api, tmp_path: Path, monkeypatch: Any
) -> None:
    import httpx

    from app.commands.sweep_remote import run_remote
    from models.config import StudentSpec
    from recommender import read_records

    class _Session:  # the test client stands in for a connection to a running server
        def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
            api.client.headers.update(headers)

        def __enter__(self) -> Any:
            return api.client

        def __exit__(self, *exc: Any) -> None:
            return None

    monkeypatch.setattr(httpx, "Client", _Session)
    fields = dict(
        name=None, teacher="minilm-l6", students=[StudentSpec(num_layers=1)], space="grid", budget=2, seed=0,
        grid=None, epochs=1, max_length=32, batch_size=8, learning_rate=5e-5, train_seed=42, teacher_epochs=1,
    )  # fmt: skip
    run_remote(
        "http://server", api.key, ["rt_polarity_200"], fields, records_out=None, wait=False, dry_run=False
    )
    assert api.get("/sweeps").json()["count"] == 1 and api.get("/datasets").json()["count"] == 1
    api.drain()
    out = tmp_path / "records.csv"
    run_remote(
        "http://server", api.key, ["rt_polarity_200"], fields, records_out=out, wait=True, dry_run=False
    )
    assert api.get("/datasets").json()["count"] == 1  # the built-in dataset was found, not registered again
    assert len(read_records(out)) == 2 and _jobs(api) == 2
