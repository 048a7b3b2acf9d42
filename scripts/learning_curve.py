"""Draw a run's learning curve (a small PNG) from its CSV metrics, with PIL only.

    python scripts/learning_curve.py <run dir or csv/metrics.csv> out.png [metric ...]

Default metrics: ``val/rec/acc@0.5`` and ``val/heldout/rec/acc@0.5`` (the training-time
validation, 80 expressions per task and split) and the training loss (right-hand panel,
a 20-step running mean of ``train/loss``). One line on stderr for a missing file or metric.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

METRICS = ("val/rec/acc@0.5", "val/heldout/rec/acc@0.5")
LOSS = "train/loss"
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
W, H, PAD = 420, 300, 48


def read_series(csv_path: Path, keys) -> dict[str, list[tuple[int, float]]]:
    """``{key: [(step, value), ...]}`` of the rows where ``key`` has a value."""
    out: dict[str, list[tuple[int, float]]] = {k: [] for k in keys}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            for k in keys:
                if row.get(k) not in (None, ""):
                    out[k].append((int(row["step"]), float(row[k])))
    return out


def running_mean(points: list[tuple[int, float]], n: int = 20) -> list[tuple[int, float]]:
    vals = [v for _, v in points]
    return [(s, sum(vals[max(0, i - n + 1) : i + 1]) / len(vals[max(0, i - n + 1) : i + 1]))
            for i, (s, _) in enumerate(points)]  # fmt: skip


def panel(series: dict[str, list[tuple[int, float]]], title: str, y_range=None) -> Image.Image:
    """One plot: every series as a polyline with dots, axes with min / max labels."""
    im = Image.new("RGB", (W, H), "white")
    d, font = ImageDraw.Draw(im), ImageFont.load_default()
    pts = [p for s in series.values() for p in s]
    x0, x1 = 0, max(p[0] for p in pts)
    y0, y1 = y_range or (min(p[1] for p in pts), max(p[1] for p in pts))
    y1 = y1 if y1 > y0 else y0 + 1

    def xy(s, v):
        return (PAD + (s - x0) / max(x1 - x0, 1) * (W - 1.5 * PAD),
                H - PAD - (v - y0) / (y1 - y0) * (H - 2 * PAD))  # fmt: skip

    d.rectangle([PAD, PAD, W - PAD // 2, H - PAD], outline="black")
    d.text((PAD, 8), title, fill="black", font=font)
    d.text((4, PAD - 6), f"{y1:.2f}", fill="black", font=font)
    d.text((4, H - PAD - 6), f"{y0:.2f}", fill="black", font=font)
    d.text((PAD, H - PAD + 6), "0", fill="black", font=font)
    d.text((W - PAD - 20, H - PAD + 6), f"step {x1}", fill="black", font=font)
    for k, (name, s) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        line = [xy(*p) for p in s]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        if len(s) < 40:
            for x, y in line:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.text((PAD + 6, PAD + 6 + 14 * k), name, fill=colour, font=font)
    return im


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    csv_path = src if src.is_file() else src / "csv" / "metrics.csv"
    if not csv_path.is_file():
        print(f"no CSV metrics at {csv_path}", file=sys.stderr)
        return 1
    keys = tuple(argv[2:]) or METRICS
    series = read_series(csv_path, (*keys, LOSS))
    missing = [k for k in keys if not series[k]]
    if missing:
        print(f"{csv_path}: no values of {', '.join(missing)}", file=sys.stderr)
        return 1
    left = panel({k: series[k] for k in keys}, "val REC Acc@0.5 (training-time)", (0.0, 1.0))
    panels = [left]
    if series[LOSS]:
        panels.append(panel({"train loss (20-step mean)": running_mean(series[LOSS])}, "loss"))
    im = Image.new("RGB", (W * len(panels), H), "white")
    for i, p in enumerate(panels):
        im.paste(p, (i * W, 0))
    im.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
