"""No FutureWarning / DeprecationWarning from our own calls: a training step, a generation and
an RL step, with every such warning raised while a ``scalar`` frame is on the stack
recorded (only the library-internal ones listed in pyproject.toml are let through)."""

from __future__ import annotations

import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import scalar
from scalar.train.run import build
from tests.conftest import compose_train
from tests.rl.conftest import RL_FAST, align_ckpt, tiny_overrides  # noqa: F401 (fixture)

PACKAGE = str(Path(scalar.__file__).resolve().parent)
CATEGORIES = (FutureWarning, DeprecationWarning)
BY_NAME = {c.__name__: c for c in CATEGORIES}


def library_ignores(config) -> list[tuple[str, type[Warning], str]]:
    """The ``ignore:message:Category:module`` entries of pyproject's filterwarnings."""
    out = []
    for entry in config.getini("filterwarnings"):
        action, message, category, module = (entry.split(":", 4) + [""] * 4)[:4]
        if action == "ignore" and category in ("FutureWarning", "DeprecationWarning"):
            out.append((message, BY_NAME[category], module))
    return out


@contextmanager
def deprecations_from_scalar(config):
    """Collects ``'Category: message (file:line)'`` of every FutureWarning /
    DeprecationWarning raised while a frame of the ``scalar`` package is on the stack."""
    found: list[str] = []

    def record(message, category, filename, lineno, file=None, line=None):
        stack = traceback.extract_stack()
        if issubclass(category, CATEGORIES) and any(f.filename.startswith(PACKAGE) for f in stack):
            ours = next(f for f in reversed(stack) if f.filename.startswith(PACKAGE))
            found.append(f"{category.__name__}: {message} ({filename}:{lineno}; from "
                         f"{Path(ours.filename).name}:{ours.lineno})")  # fmt: skip

    with warnings.catch_warnings():
        for category in CATEGORIES:
            warnings.simplefilter("always", category)
        for message, category, module in library_ignores(config):
            warnings.filterwarnings("ignore", message, category, module)
        warnings.showwarning = record
        yield found


class Warns:
    """Warns when ``scalar.model.llm.resolve_dtype`` formats it: a warning under a scalar frame."""

    def __init__(self, message: str, module: str):
        self.message, self.module = message, module

    def __str__(self) -> str:
        warnings.warn_explicit(self.message, FutureWarning, "lib.py", 1, module=self.module)
        return "float32"


def test_the_recorder_keeps_ours_and_lets_the_listed_library_warnings_through(request):
    from scalar.model.llm import resolve_dtype

    ignores = library_ignores(request.config)
    assert "lightning.pytorch.utilities._pytree" in {m for _, _, m in ignores}
    with deprecations_from_scalar(request.config) as found:
        resolve_dtype(Warns("old api", "transformers.whatever"))
        leaf = "`isinstance(treespec, LeafSpec)` is deprecated, use ..."
        resolve_dtype(Warns(leaf, "lightning.pytorch.utilities._pytree"))  # listed: let through
        warnings.warn("no scalar frame", DeprecationWarning, stacklevel=1)
    assert len(found) == 1 and found[0].startswith("FutureWarning: old api (lib.py:1; from llm.py")


def _first_val_batch(dm):
    loaders = dm.val_dataloader()
    return next(iter(loaders[0] if isinstance(loaders, list | tuple) else loaders))


def test_training_step_and_generation(make_cfg, request):
    cfg = make_cfg("debug=fdr", "trainer.max_steps=1")
    with deprecations_from_scalar(request.config) as found:
        parts = build(cfg)
        parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"])
        assert parts["trainer"].global_step == 1
        model, dm = parts["module"].model, parts["datamodule"]
        batch = _first_val_batch(dm)
        for cache in (True, False):
            gen = model.generate(batch, max_new_tokens=4, use_cache=cache)
            assert gen["tokens"].shape[0] == len(batch["samples"])
    assert found == [], "\n".join(found)


def test_rl_step(tiny_corpus, align_ckpt, tmp_path, request):  # noqa: F811
    base = tiny_overrides(tiny_corpus, tmp_path / "logs", tmp_path / "run")
    cfg = compose_train([*base, *RL_FAST, "rl/algo=grpo", f"init_from={align_ckpt}", "debug=fdr"])
    with deprecations_from_scalar(request.config) as found:
        parts = build(cfg)
        parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"])
    assert parts["trainer"].global_step == 1
    assert found == [], "\n".join(found)


class NewDecoder(torch.nn.Module):
    def forward(self, inputs_embeds=None, cache=None, **kwargs):
        return inputs_embeds


class OldDecoder(torch.nn.Module):
    def forward(self, inputs_embeds=None, past_key_values=None, **kwargs):
        return inputs_embeds


class Wrapper(torch.nn.Module):  # FSDP / DDP wrappers: forward(*args, **kwargs), ``.module``
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@pytest.mark.parametrize("decoder,name", [(NewDecoder, "cache"), (OldDecoder, "past_key_values")])
def test_the_cache_keyword_follows_the_forward_signature(decoder, name):
    from scalar.model.llm import cache_argument

    assert cache_argument(decoder()) == name
    assert cache_argument(Wrapper(Wrapper(decoder()))) == name


def test_the_decoder_stack_is_found_when_get_decoder_returns_none():
    """transformers 4.56.0's generic ``get_decoder`` gives None on LlamaForCausalLM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from scalar.model.llm import decoder_stack

    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, vocab_size=20)  # fmt: skip
    lm = LlamaForCausalLM(cfg)
    assert decoder_stack(lm) is lm.model
    lm.get_decoder = lambda: None
    assert decoder_stack(lm) is lm.model
