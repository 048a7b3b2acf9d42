"""Text normalisation shared by the text metrics (classification, QA, captions)."""

from __future__ import annotations

import re
import string

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")
_ARTICLES = {"a", "an", "the"}


def simple_tokenize(text: str) -> list[str]:
    """Lower-case, punctuation replaced by spaces, split on whitespace (no Java PTB tokenizer)."""
    return _PUNCT.sub(" ", str(text).lower()).split()


def normalize_answer(text: str) -> str:
    """Answer form used for exact match: simple tokens without articles, space-joined."""
    return " ".join(t for t in simple_tokenize(text) if t not in _ARTICLES)
