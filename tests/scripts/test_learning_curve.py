"""scripts/learning_curve.py: the CSV series it reads, its running mean and the PNG."""

import importlib.util
import sys

import pytest
from PIL import Image

from tests.paths import ROOT


@pytest.fixture(scope="module")
def lc():
    spec = importlib.util.spec_from_file_location(
        "learning_curve", ROOT / "scripts/learning_curve.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["learning_curve"] = mod
    spec.loader.exec_module(mod)
    return mod


ROWS = """epoch,step,train/loss,val/rec/acc@0.5,val/heldout/rec/acc@0.5
0,0,4.0,,
0,1,2.0,,
0,1,,0.25,0.5
0,2,3.0,,
0,3,,0.75,
"""


def test_series_running_mean_and_picture(lc, tmp_path, capsys):
    csv_path = tmp_path / "csv" / "metrics.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(ROWS)
    s = lc.read_series(csv_path, ("val/rec/acc@0.5", "val/heldout/rec/acc@0.5", "train/loss"))
    assert s["val/rec/acc@0.5"] == [(1, 0.25), (3, 0.75)]
    assert s["val/heldout/rec/acc@0.5"] == [(1, 0.5)]
    assert lc.running_mean(s["train/loss"], n=2) == [(0, 4.0), (1, 3.0), (2, 2.5)]
    out = tmp_path / "curve.png"
    assert lc.main([str(tmp_path), str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (2 * lc.W, lc.H)  # REC panel and loss panel
    assert lc.main([str(tmp_path), str(out), "val/nope"]) == 1
    assert "no values of val/nope" in capsys.readouterr().err
    assert lc.main([str(tmp_path / "absent"), str(out)]) == 1
