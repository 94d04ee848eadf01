"""/recommend and /meta-learner: ranking, budgets, no meta-learner, refit from the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.app.conftest import Api


def test_recommend_for_a_dataset(api: Api) -> None:
    dataset = api.builtin_dataset()
    response = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 4})
    assert response.status_code == 201, response.text
    rec = response.json()
    assert rec["meta_learner_version"] == 1 and rec["dataset_id"] == dataset["id"]
    assert rec["teacher"]["name"] == "minilm-l6" and rec["teacher"]["num_layers"] == 6
    items = rec["items"]
    assert [i["rank"] for i in items] == [1, 2, 3, 4]
    ratios = [i["predicted_ratio"] for i in items]
    assert ratios[0] == max(ratios)  # the first pick is the best predicted; the rest a portfolio
    expected = [i["expected_best_of_k"] for i in items]
    assert expected == sorted(expected) and expected[0] == ratios[0]
    for item in items:
        low, high = item["interval"]
        assert low <= item["predicted_ratio"] <= high and item["interval_coverage"] == 0.8
        why = item["explanation"]
        assert why["text"].startswith(f"Pick #{item['rank']}")
        assert why["nearest_datasets"] and all(0 <= n["similarity"] <= 1 for n in why["nearest_datasets"])
        assert all(":" not in n["dataset"] for n in why["nearest_datasets"])  # names, not digests
        assert why["drivers"] and why["alternatives"]
        assert item["student"] == {**item["student"], "num_layers": 2}
    assert len({json.dumps(i["kd_config"], sort_keys=True) for i in items}) == 4
    assert api.get(f"/recommendations/{rec['id']}").json() == rec
    same = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 4}).json()
    assert same == rec  # an identical question under the same meta-learner: the same answer
    other = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 2}).json()
    assert other["id"] != rec["id"] and other["items"] == rec["items"][:2]
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    pipeline = schemas["RecommendedPipeline"]["properties"]
    assert {"interval_coverage", "expected_best_of_k", "explanation"} <= set(pipeline)
    assert {"nearest_datasets", "drivers", "alternatives"} <= set(
        schemas["RecommendationExplanation"]["properties"]
    )
    assert "similarity" in schemas["NearestDataset"]["properties"]


def test_recommend_with_inline_meta_features_and_budget(api: Api) -> None:
    body = {
        "meta_features": {"n_train": 3000.0, "is_pair": 0.0, "n_labels": 3.0},
        "task_kind": "classification",
        "budget": {"max_layers": 3},
        "k": 5,
    }
    response = api.post("/recommend", json=body)
    assert response.status_code == 201, response.text
    layers = {i["student"]["num_layers"] for i in response.json()["items"]}
    assert layers and max(layers) <= 3
    tiny = api.post("/recommend", json={**body, "budget": {"max_params": 10}})
    assert tiny.status_code == 422
    not_finite = api.post(
        "/recommend",
        content=b'{"meta_features": {"n_train": NaN}, "task_kind": "classification"}',
        headers={"Content-Type": "application/json"},
    )
    assert not_finite.status_code == 422 and "finite" in not_finite.text
    no_kind = api.post("/recommend", json={"meta_features": {"n_train": 10.0}})
    assert no_kind.status_code == 422 and no_kind.json()["error"]["code"] == "invalid_request"


def test_recommend_input_errors(api: Api, tmp_path: Path) -> None:
    dataset = api.builtin_dataset()
    base = {"dataset_id": dataset["id"]}
    assert api.post("/recommend", json={**base, "k": 10_000}).status_code == 422
    assert api.post("/recommend", json={"dataset_id": "missing"}).status_code == 404
    both = api.post("/recommend", json={**base, "meta_features": {}})
    assert both.status_code == 422
    assert api.post("/recommend", json={**base, "teacher": "no-such-teacher"}).status_code == 422
    outside = api.post("/recommend", json={**base, "teacher": "/etc"})
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "path_not_allowed"
    assert api.post("/recommend", json={**base, "student": {"num_layers": 7}}).status_code == 422


def test_recommend_with_a_teacher_folder_under_a_model_root(api: Api) -> None:
    root = api.services.settings.resolved_model_roots[0]
    folder = root / "tiny-bert"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "num_hidden_layers": 4,
                "hidden_size": 128,
                "num_attention_heads": 2,
                "intermediate_size": 512,
                "vocab_size": 1000,
                "max_position_embeddings": 128,
                "type_vocab_size": 2,
            }
        )
    )
    dataset = api.builtin_dataset()
    for name in ("tiny-bert", str(folder)):
        response = api.post("/recommend", json={"dataset_id": dataset["id"], "teacher": name, "k": 2})
        assert response.status_code == 201, response.text
        assert response.json()["teacher"]["num_layers"] == 4
    link = root / "escape"
    link.symlink_to("/etc", target_is_directory=True)
    assert api.post("/recommend", json={"dataset_id": dataset["id"], "teacher": "escape"}).status_code == 403


def test_without_meta_learner_recommend_is_unavailable_until_records_exist(make_api: Any) -> None:
    api = make_api(meta_learner={"artifact": None, "use_shipped": False})
    dataset = api.builtin_dataset()
    info = api.get("/meta-learner").json()
    assert info == {**info, "available": False, "active": None, "records": 0}
    response = api.post("/recommend", json={"dataset_id": dataset["id"]})
    assert response.status_code == 503 and response.json()["error"]["code"] == "meta_learner_unavailable"
    refit = api.post("/meta-learner/refit", json={"evaluate": False})
    assert refit.status_code == 409 and refit.json()["error"]["code"] == "not_enough_records"
    # one MI pipeline: the recommender cannot yet fit when a config feature is missing in every record
    for inter in ({"loss": "mi", "alpha": 0.9}, {"loss": "none"}):
        config = {"intermediate": inter, "training": {"epochs": 1, "max_steps": 2}}
        assert api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config}).status_code == 202
    api.drain()
    assert api.get("/meta-learner").json()["available"] is True
    response = api.post("/recommend", json={"dataset_id": dataset["id"], "k": 2})
    assert response.status_code == 201, response.text
    info = api.get("/meta-learner").json()
    assert (
        info["active"]["source"] == "refit" and info["active"]["n_records"] == 2 and info["new_records"] == 0
    )


def test_manual_refit_with_evaluation_and_history(api: Api) -> None:
    from tests.app.conftest import synthetic_records

    api.services.store.sweep_records.append_imported([r.to_dict() for r in synthetic_records()])
    response = api.post("/meta-learner/refit", json={"evaluate": True})
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["version"] == 2 and version["source"] == "refit" and version["n_records"] == 24
    summary = version["evaluation"]["summary"]
    assert set(summary) >= {"meta_learner", "fixed_default", "nearest_datasets", "random"}
    info = api.get("/meta-learner").json()
    assert info["active"]["version"] == 2 and [v["version"] for v in info["history"]] == [2, 1]
    dataset = api.builtin_dataset()
    assert api.post("/recommend", json={"dataset_id": dataset["id"]}).json()["meta_learner_version"] == 2
    assert api.get("/sweep-records", params={"source": "imported", "limit": 5}).json()["count"] == 24


def test_automatic_refit_policy(make_api: Any) -> None:
    api = make_api(meta_learner={"artifact": None, "use_shipped": False, "auto_refit_every": 2})
    dataset = api.builtin_dataset()
    from app.jobs.dispatcher import Dispatcher
    from app.jobs.local import ThreadBackend
    from tests.app.fake_runners import FAKE_RUNNERS

    refits: list[Any] = []
    dispatcher = Dispatcher(
        api.services.store,
        api.services.settings,
        ThreadBackend(False),
        runners=FAKE_RUNNERS,
        on_succeeded=lambda job: refits.append(api.services.meta_learners.maybe_refit()),
    )
    for inter in ({"loss": "mi", "alpha": 0.9}, {"loss": "none"}, {"loss": "pkd"}):
        config = {"intermediate": inter, "training": {"epochs": 1, "max_steps": 1}}
        api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config})
        dispatcher.run_until_idle()
    assert [r is not None for r in refits] == [False, True, False]
    assert api.get("/meta-learner").json()["active"]["n_records"] == 2


def test_inline_questions_of_a_known_shape_are_answered_on_the_event_loop_and_stored(api: Api) -> None:
    def body(n_train: float) -> dict[str, Any]:
        return {
            "meta_features": {"n_train": n_train, "is_pair": 0.0, "n_labels": 2.0},
            "task_kind": "classification",
            "k": 3,
        }

    first = api.post("/recommend", json=body(100.0)).json()
    assert len(api.services.recommend._warm) == 1  # the shape is known from now on
    answers = [api.post("/recommend", json=body(n)) for n in (200.0, 5000.0, 90000.0)]
    assert all(r.status_code == 201 for r in answers)
    ids = {first["id"], *(r.json()["id"] for r in answers)}
    assert len(ids) == 4
    for r in answers:  # the fast rendering says what the schema serves for the stored copy
        assert api.get(f"/recommendations/{r.json()['id']}").json() == r.json()
    budget = {**body(300.0), "budget": {"max_layers": 3}}
    twice = [api.post("/recommend", json=budget).json() for _ in range(2)]
    assert twice[0] == twice[1] == api.get(f"/recommendations/{twice[0]['id']}").json()
