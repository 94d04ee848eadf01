"""Source tasks: the corpus a dataset's texts come from, the unit that evaluation holds out.

Size variants of one task (``rotten_tomatoes@250``, ``rotten_tomatoes@600``) and tasks built on
the same texts share everything a meta-learner could memorise, so an honest "new task" check holds
them out together. Decided here (strict, when in doubt together):

- ``tweet_sentiment`` and ``tweet_confidence`` label the same tweets: one source, ``tweets``.
- ``rt_polarity`` (Pang & Lee sentences) and ``rotten_tomatoes`` (RT snippets) are different
  corpora of the same domain and style (one-sentence movie reviews): one source, ``movie_reviews``.
- ``bbc_news`` and ``bbc_pair`` (pairs built from BBC articles): one source, ``bbc``.
- ``tweet_polarity`` labels the same tweets as ``tweet_sentiment``: ``tweets``.
- ``sotu_party``, ``sotu_president`` and ``sotu_year`` label the same State of the Union passages:
  one source, ``sotu``.

Anything else is its own source: the dataset id without its ``:digest``, ``@size`` and
``_<number>`` suffixes. A record that carries a ``source_task`` of its own (knowledge base v2)
is taken at its word.
"""

from __future__ import annotations

import re
from typing import Any

# Corpus name (suffixes stripped) -> source task, for corpora that share their texts or domain.
SHARED_SOURCES = {
    "tweet_sentiment": "tweets",
    "tweet_confidence": "tweets",
    "tweet_eval": "tweets",
    "tweet_polarity": "tweets",
    "rotten_tomatoes": "movie_reviews",
    "rt_polarity": "movie_reviews",
    "bbc_news": "bbc",
    "bbc_pair": "bbc",
    "sotu_party": "sotu",
    "sotu_president": "sotu",
    "sotu_year": "sotu",
}
_SIZE = re.compile(r"(@\d+|_\d+)$")


def corpus_name(dataset_id: str) -> str:
    """``rotten_tomatoes@250:cd66...`` -> ``rotten_tomatoes``; ``rt_polarity_200`` -> ``rt_polarity``."""
    name = dataset_id.split(":", 1)[0].strip().lower()
    while (stripped := _SIZE.sub("", name)) != name and stripped:
        name = stripped
    return name


def source_task(dataset_id: str) -> str:
    """The source task of a dataset id (see the module docstring for the shared sources)."""
    name = corpus_name(dataset_id)
    return SHARED_SOURCES.get(name, name)


def record_source_task(record: Any) -> str:
    """A record's own ``source_task`` when it has one, else :func:`source_task` of its dataset."""
    own = getattr(record, "source_task", None)
    return str(own) if own else source_task(record.dataset_id)


def display_name(dataset_id: str) -> str:
    """The dataset id without its content digest, for people (``bbc_news@600``)."""
    return dataset_id.split(":", 1)[0]
