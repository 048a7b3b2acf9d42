"""Region captioning: BLEU-4, METEOR, ROUGE-L, CIDEr (and SPICE) with pycocoevalcap's scorers.

Text is tokenised with ``simple_tokenize`` (lower case, punctuation removed), not the
Java PTB tokenizer of coco-caption; the scorers get the same space-joined tokens as
in ``scalar.metrics.caption``. METEOR runs pycocoevalcap's Java jar: Java is checked
first (``shutil.which('java')`` and ``java -version``); without it METEOR is reported
as unavailable (one line, no number) and the other scores are still computed. The
METEOR process loads a large paraphrase table (tens of seconds), so it is started once
per Python process and reused. SPICE needs the Stanford CoreNLP jars, which
pycocoevalcap downloads on first use; nothing is downloaded here, so SPICE is computed
only when asked for and those jars are already installed.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalar.metrics.keyed import KeyedRecordMetric, metas_or_none
from scalar.metrics.text import simple_tokenize

SCORES = ("bleu4", "meteor", "rouge_l", "cider", "spice")
_METEOR: Any = None


def tokenized(text: str) -> str:
    return " ".join(simple_tokenize(text))


def java_status() -> tuple[bool, str]:
    """``(True, version line)`` when a Java runtime answers ``java -version``, else
    ``(False, reason)``."""
    java = shutil.which("java")
    if java is None:
        return False, "no Java runtime found (java is not on PATH); install a JRE to compute it"
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"'{java} -version' failed ({err})"
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    if proc.returncode != 0:
        return False, f"'{java} -version' exited with {proc.returncode}"
    return True, lines[0] if lines else java


def _pycocoevalcap_dir() -> Path:
    import pycocoevalcap.meteor.meteor as m

    return Path(m.__file__).resolve().parent.parent


def meteor_scorer():
    """The process-wide pycocoevalcap ``Meteor`` (started on first use, closed at exit)."""
    global _METEOR
    if _METEOR is None or _METEOR.meteor_p.poll() is not None:
        from pycocoevalcap.meteor.meteor import Meteor

        _METEOR = Meteor()
        atexit.register(close_meteor)
    return _METEOR


def close_meteor() -> None:
    global _METEOR
    if _METEOR is not None:
        proc, _METEOR = _METEOR.meteor_p, None
        if proc.poll() is None:
            proc.stdin.close()
            proc.kill()
            proc.wait()


def meteor_status(enabled: bool = True) -> str | None:
    """``None`` when METEOR can run, else the one-line reason it is not reported."""
    if not enabled:
        return "METEOR not computed (meteor=false)"
    ok, info = java_status()
    if not ok:
        return f"METEOR unavailable: {info}"
    jar = _pycocoevalcap_dir() / "meteor" / "meteor-1.5.jar"
    if not jar.is_file():
        return f"METEOR unavailable: {jar} is missing"
    return None


def spice_status(enabled: bool = False) -> str | None:
    """``None`` when SPICE can run offline, else the one-line reason it is not reported."""
    if not enabled:
        return "SPICE not computed (spice=false; it needs Java and the Stanford CoreNLP jars)"
    lib = _pycocoevalcap_dir() / "spice" / "lib"
    jars = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        return (f"SPICE unavailable offline: {', '.join(missing)} missing in {lib} "
                "(pycocoevalcap downloads them; this program never downloads)")  # fmt: skip
    ok, info = java_status()
    return None if ok else f"SPICE unavailable: {info}"


def caption_scores(
    preds: Sequence[str], refs: Sequence[Sequence[str]], meteor: bool = True, spice: bool = False
) -> tuple[dict[str, float], list[dict[str, float]], dict[str, str]]:
    """Corpus scores, per-caption scores and ``{score: reason}`` for scores not computed.

    ``refs[i]`` lists the references of ``preds[i]`` (at least one each).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} captions for {len(refs)} reference lists")
    unavailable = {k: v for k, v in (("meteor", meteor_status(meteor)),
                                     ("spice", spice_status(spice))) if v}  # fmt: skip
    if not preds:
        return {}, [], unavailable
    gts, res = {}, {}
    for i, (pred, ref) in enumerate(zip(preds, refs)):
        ref = [ref] if isinstance(ref, str) else list(ref)
        if not ref:
            raise ValueError(f"caption {i} has no reference")
        gts[i], res[i] = [tokenized(r) for r in ref], [tokenized(pred)]
    corpus: dict[str, float] = {}
    each: dict[str, list[float]] = {}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    corpus["bleu4"], each["bleu4"] = float(bleu[3]), [float(v) for v in bleu_each[3]]
    if "meteor" not in unavailable:
        score, scores = meteor_scorer().compute_score(gts, res)
        corpus["meteor"], each["meteor"] = float(score), [float(v) for v in scores]
    score, scores = Rouge().compute_score(gts, res)
    corpus["rouge_l"], each["rouge_l"] = float(score), [float(v) for v in scores]
    score, scores = Cider().compute_score(gts, res)
    corpus["cider"], each["cider"] = float(score), [float(v) for v in scores]
    if "spice" not in unavailable:
        from pycocoevalcap.spice.spice import Spice

        score, scores = Spice().compute_score(gts, res)
        corpus["spice"] = float(score)
        each["spice"] = [float(s["All"]["f"]) for s in scores]
    per_sample = [{k: v[i] for k, v in each.items()} for i in range(len(preds))]
    return corpus, per_sample, unavailable


class CaptionScores(KeyedRecordMetric):
    """Corpus caption scores of generated region descriptions against their references.

    ``update(preds, refs, metas=None, keys=None)``; ``compute()`` gives ``bleu4``,
    ``meteor`` (when available), ``rouge_l``, ``cider`` (``spice`` when enabled and
    installed), ``n``, ``unparseable`` (empty outputs) and the same per ``source``
    (``region`` / ``refexp``) when both occur. After ``compute``: ``unavailable``
    (``{score: one-line reason}``) and ``per_sample`` (``(key, scores)`` of each record).
    """

    higher_is_better = True

    def __init__(self, meteor: bool = True, spice: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.use_meteor, self.use_spice = bool(meteor), bool(spice)
        self.unavailable: dict[str, str] = {}
        self.per_sample: list[tuple[Any, dict[str, float]]] = []

    def update(self, preds: Sequence[str], refs, metas=None, keys=None) -> None:
        if len(preds) != len(refs):
            raise ValueError(f"{len(preds)} captions for {len(refs)} reference lists")
        metas = metas_or_none(metas, len(preds))
        recs = []
        for pred, ref, meta in zip(preds, refs, metas):
            ref = [ref] if isinstance(ref, str) else list(ref)
            source = (meta or {}).get("source")
            recs.append({"pred": str(pred), "refs": ref, "source": source,
                         "parsed": bool(simple_tokenize(pred))})  # fmt: skip
        self._add(keys, recs)

    def _score(self, recs: list[dict[str, Any]]) -> tuple[dict[str, float | int], list]:
        scores, each, self.unavailable = caption_scores(
            [r["pred"] for r in recs], [r["refs"] for r in recs], self.use_meteor, self.use_spice
        )
        out: dict[str, float | int] = dict(scores) if recs else {"cider": float("nan")}
        out["n"] = len(recs)
        out["unparseable"] = sum(not r["parsed"] for r in recs)
        return out, each

    def compute(self) -> dict[str, float | int]:
        keyed = self.unique()
        recs = [r for _, r in keyed]
        out, each = self._score(recs)
        self.per_sample = [(k, s) for (k, _), s in zip(keyed, each)]
        for src in self._sources(recs):
            part, _ = self._score([r for r in recs if str(r["source"]) == src])
            out.update({f"{src}/{k}": v for k, v in part.items()})
        return out

    @staticmethod
    def _sources(recs: list[dict[str, Any]]) -> list[str]:
        sources = sorted({str(r["source"]) for r in recs if r["source"]})
        return sources if len(sources) > 1 else []

    def intervals(self, resamples: int, seed: int) -> dict[str, list[float] | None]:
        """Bootstrap intervals of the scores ``compute`` gave (call it first), overall and
        per source; see ``scalar.metrics.bootstrap_caption``."""
        from scalar.metrics.bootstrap import resample_indices
        from scalar.metrics.bootstrap_caption import caption_intervals

        scored = dict(self.per_sample)
        recs = [(r, scored.get(k, {})) for k, r in self.unique()]
        out: dict[str, list[float] | None] = {}
        for src in [None, *self._sources([r for r, _ in recs])]:
            part = [(r, s) for r, s in recs if src is None or str(r["source"]) == src]
            if not part or resamples < 1:
                continue
            names = sorted({k for _, s in part for k in s})
            found = caption_intervals(
                [tokenized(r["pred"]) for r, _ in part],
                [[tokenized(t) for t in r["refs"]] for r, _ in part],
                {k: [s.get(k, float("nan")) for _, s in part] for k in names},
                resample_indices(len(part), resamples, seed),
            )
            prefix = "" if src is None else f"{src}/"
            out.update({prefix + k: v for k, v in found.items() if k in names})
        return out
