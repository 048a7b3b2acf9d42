"""The WordNet database reader on a hand-written mini WordNet folder."""

import pytest

from scalar.data.join.wordnet import WordNet, WordNetError, load_wordnet
from tests.data.join.miniwordnet import write_mini_wordnet


@pytest.fixture
def wn(tmp_path):
    return WordNet(write_mini_wordnet(tmp_path / "wn"))


def test_synsets_by_sense_and_hypernym_paths(wn):
    assert wn.synset("dog.n.01").words == ("dog", "domestic_dog")
    assert wn.synset("dog.n.02").words == ("frump", "dog")
    assert wn.synset("dog.n.03") is None and wn.synset("cat.n.01") is None
    assert wn.synset("not a synset") is None
    path = ["entity", "physical entity", "organism", "animal", "canine", "dog"]
    assert wn.hypernym_path("dog.n.01") == path
    assert wn.hypernym_path("domestic_dog.n.01") == path
    assert wn.hypernym_path("car.n.01")[-3:] == ["artifact", "vehicle", "car"]
    assert wn.hypernym_path("unknown.n.01") == []


def test_related_is_hypernymy_either_way(wn):
    assert wn.related("man.n.01", "person.n.01") and wn.related("person.n.01", "man.n.01")
    assert not wn.related("man.n.01", "dog.n.01")
    assert not wn.related("car.n.01", "tree.n.01")
    assert not wn.related("car.n.01", "nothing.n.01")


def test_missing_and_malformed_folders(tmp_path):
    assert load_wordnet(None) is None
    with pytest.raises(FileNotFoundError, match="index.noun"):
        WordNet(tmp_path)
    folder = write_mini_wordnet(tmp_path / "bad")
    with open(folder / "data.noun", "a") as f:
        f.write("00000099 03 n zz broken\n")
    with pytest.raises(WordNetError, match="data.noun: line 15"):
        WordNet(folder)
