"""Scene-description exhaustiveness (share of reference entities mentioned), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from scalar.rewards.mentions import entity_mention_reward, mentioned_names


def test_mentioned_names_match_words_plurals_and_phrases():
    names = ["circle", "star", "traffic light", "box", "cross"]
    assert mentioned_names("two circles left of a traffic light", names) == [
        "circle",
        "traffic light",
    ]
    assert mentioned_names("the boxes near the stars", names) == ["star", "box"]
    assert mentioned_names("a crossing light", names) == []  # words, not substrings


def test_exhaustiveness_is_the_share_of_reference_entities_mentioned():
    texts = ["a red circle above a star", "a circle", "nothing here", "anything"]
    entities = [["circle", "star"], ["circle", "star", "cross", "circle"], ["box"], []]
    np.testing.assert_allclose(entity_mention_reward(texts, entities), [1.0, 1 / 3, 0.0, 1.0])
    with pytest.raises(ValueError, match="2 texts for 1"):
        entity_mention_reward(["a", "b"], [["x"]])
