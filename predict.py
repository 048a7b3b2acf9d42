"""Ask a checkpoint about one image: ``python predict.py ckpt=... image=... prompt=...``.

Prints the answer (and its boxes in pixels) and saves a picture. Examples::

    python predict.py ckpt=last image=cat.png prompt="where is the red circle?"
    python predict.py ckpt=run.ckpt image=cat.png prompt="what is <region>?" box=[10,20,60,80]
    python predict.py ckpt=... image=... prompt="describe <region>." point=[40,52]

``image``, ``prompt``, ``box``, ``point`` and ``out`` are short for ``predict.<key>``;
other ``conf/eval.yaml`` keys work as in eval.py (see ``scalar.train.predict``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # avoids a 5x slowdown on shared cores


def main() -> int:
    from scalar.train.predict import main as predict

    return predict()


if __name__ == "__main__":
    raise SystemExit(main())
