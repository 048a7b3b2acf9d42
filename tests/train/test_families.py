"""Real LLM families end to end through the real Hydra configs: ``train.py model=hf_tiny
model.llm.path=<dir>`` (and ``model=hf_local``), eval.py and predict on the checkpoint,
one tokenizer per run, and an overfit to exact answers that stop where the targets stop.

Qwen2 (no bos, eos = pad) runs in the normal suite; every family runs under ``slow``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from scalar.core.errors import UserError
from scalar.core.tokenizer import load_tokenizer
from scalar.train.checkpoint import load_checkpoint_file
from scalar.train.run import build, train
from scalar.train.tokenizer_record import fingerprint
from tests.eval.conftest import compose_eval, eval_args
from tests.families import FAMILIES, family_dir
from tests.paths import SYNTHETIC


def _rows_of(path: Path) -> int:
    """Embedding rows of the family's model once our tokens are added."""
    import json

    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    return max(vocab, len(load_tokenizer(path)))


def _first_lm(run: Path) -> float:
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    return float(next(r["train/lm"] for r in rows if r.get("train/lm")))


def _train_and_eval(family, make_cfg, tmp_path, tmp_path_factory, tiny_corpus, *extra):
    """Train 4 steps on the default task mixture, evaluate and predict with the checkpoint."""
    from scalar.train.evaluate import evaluate
    from scalar.train.predict import main as predict_main

    path = family_dir(tmp_path_factory, family)
    cfg = make_cfg("model=hf_tiny", f"model.llm.path={path}", *extra)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    tok = load_tokenizer(path)
    saved = load_tokenizer(run / "tokenizer")  # the run folder keeps the run's tokenizer
    assert fingerprint(saved)["sha256"] == fingerprint(tok)["sha256"]
    ckpt = sorted((run / "checkpoints").glob("*.ckpt"))[0]
    record = load_checkpoint_file(ckpt)["scalar"]["tokenizer"]
    assert record["sha256"] == fingerprint(tok)["sha256"] and record["size"] == len(tok)
    ecfg = compose_eval(eval_args(tiny_corpus, tmp_path / "logs", f"ckpt={ckpt}", "split=val",
                                  f"paths.output_dir={tmp_path / 'eval'}",
                                  "tasks=[rec,roc,caption]", "max_new_tokens=6"))  # fmt: skip
    results = evaluate(ecfg, overrides=[])
    assert all(results["counts"]["val"][t]["n"] > 0 for t in ("rec", "roc", "caption"))
    image = sorted((tiny_corpus / SYNTHETIC / "images").glob("*.png"))[0]
    args = [f"ckpt={ckpt}", f"image={image}", f"out={tmp_path / 'p.png'}", "max_new_tokens=4"]
    assert predict_main([*args, "prompt=what is <region>?", "box=[10,20,60,80]"]) == 0
    return cfg, run, ckpt


def test_qwen2_trains_evaluates_and_keeps_one_tokenizer(
    make_cfg, tmp_path, tmp_path_factory, tiny_corpus
):
    cfg, run, ckpt = _train_and_eval("qwen2", make_cfg, tmp_path, tmp_path_factory, tiny_corpus)
    rows = _rows_of(Path(cfg.model.llm.path))
    assert rows == 400 + 16  # the tokenizer's 400 + the checkpoint's 16 spare rows (ours fit)
    assert abs(_first_lm(run) - math.log(rows)) < 0.1  # random init: about ln|V| at step 1
    # a data tokenizer other than the model's is one clear error
    tiny_tok = tiny_corpus / SYNTHETIC / "tokenizer"
    bad = make_cfg("model=hf_tiny", f"model.llm.path={cfg.model.llm.path}",
                   f"data.tokenizer_path={tiny_tok}", run_dir=tmp_path / "bad")  # fmt: skip
    with pytest.raises(UserError, match="one run has one tokenizer"):
        build(bad)
    # so is evaluating the checkpoint with another tokenizer; the run folder's copy is named
    from scalar.train.evaluate import evaluate

    ecfg = compose_eval(eval_args(tiny_corpus, tmp_path / "logs", f"ckpt={ckpt}",
                                  f"paths.output_dir={tmp_path / 'e2'}",
                                  f"model.tokenizer_path={tiny_tok}"))  # fmt: skip
    with pytest.raises(UserError, match=f"use model.tokenizer_path={run / 'tokenizer'}"):
        evaluate(ecfg, overrides=[f"model.tokenizer_path={tiny_tok}"])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_the_default_mixture(
    family, make_cfg, tmp_path, tmp_path_factory, tiny_corpus
):
    cfg, run, _ = _train_and_eval(family, make_cfg, tmp_path, tmp_path_factory, tiny_corpus)
    assert abs(_first_lm(run) - math.log(_rows_of(Path(cfg.model.llm.path)))) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_run_trains_adapters_and_new_rows_and_reloads_bit_exactly(
    family, make_cfg, tmp_path, tmp_path_factory, tiny_corpus
):
    from hydra.utils import instantiate

    from scalar.train.checkpoint import load_weights

    lora = ["model.llm.freeze=true", "model.llm.lora={r:4,dropout:0.0}", "model.trainable.llm=auto"]
    cfg, run, ckpt = _train_and_eval(family, make_cfg, tmp_path, tmp_path_factory, tiny_corpus,
                                     *lora)  # fmt: skip
    torch.manual_seed(123)
    fresh = instantiate(cfg.model)
    names = set(fresh.trainable_parameter_names())
    assert "new_tokens.input_rows" in names and any("lora_B" in n for n in names)
    assert not any(n.startswith("llm.") and "lora_" not in n for n in names)
    init = {k: v.clone() for k, v in fresh.state_dict().items()}
    load_weights(fresh, load_checkpoint_file(ckpt), str(ckpt))
    state = load_checkpoint_file(ckpt)["state_dict"]
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[f"model.{key}"]), key
    moved = {k for k, v in fresh.state_dict().items() if not torch.equal(v, init[k])}
    assert "new_tokens.input_rows" in moved and any("lora_B" in k for k in moved)
    # the frozen rows of the family's own vocabulary are the directory's, untouched
    from transformers import AutoModelForCausalLM

    own = AutoModelForCausalLM.from_pretrained(cfg.model.llm.path).get_input_embeddings().weight
    frozen = fresh.causal_lm.get_input_embeddings().weight
    assert torch.equal(frozen[: own.shape[0]], own)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_hf_local_command_as_documented(family, tmp_path, tmp_path_factory, tiny_corpus):
    """``python train.py model=hf_local model.llm.path=<dir>`` (random tower allowed)."""
    import subprocess
    import sys

    from tests.conftest import ROOT, cli_overrides

    path = family_dir(tmp_path_factory, family)
    args = [sys.executable, str(ROOT / "train.py"), "model=hf_local", f"model.llm.path={path}",
            "model.vision.require_pretrained=false", "model.llm.dtype=float32",
            *[a for a in cli_overrides(tiny_corpus, tmp_path / "logs") if a != "model=tiny"],
            "trainer.max_steps=2", "trainer.val_check_interval=2", "validate=false"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert (runs[-1] / "tokenizer" / "tokenizer.json").is_file()
    assert abs(_first_lm(runs[-1]) - math.log(_rows_of(path))) < 0.15
