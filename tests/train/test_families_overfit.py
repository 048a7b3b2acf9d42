"""Each family overfits a handful of REC and caption samples to exact answers: the greedy
answer is the target's tokens followed by the family's eos (the text ends where the target
ends) and every ``<box>`` trigger gives a parsed box."""

from __future__ import annotations

import pytest
import torch

from scalar.data.dataset import SampleDataset
from scalar.losses.lm import LMLoss
from scalar.train.tokenizer_record import share_tokenizer
from tests.families import FAMILIES, family_dir

MAX_STEPS, EVERY = 400, 10


def exact(model, batch, gen, collator) -> list[bool]:
    eos, out = model.tokenizer.eos_token_id, []
    for i, s in enumerate(batch["samples"]):
        want = collator.encode([s.target])[0] + [eos]
        n = int(gen["lengths"][i])
        got = gen["tokens"][i, :n].tolist()
        out.append(got == want and gen["texts"][i] == s.target
                   and len(gen["boxes"][i]) == len(s.target_boxes))  # fmt: skip
    return out


def overfit(cfg, max_steps: int = MAX_STEPS):
    """``(steps to exact answers or None, final generation, batch)`` on 3 REC + 3 captions."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.prepare_data()
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    share_tokenizer(model, dm)
    dm.setup()
    enc = dm.collator.encode
    pool = dm.samples["train"]
    rec = [s for s in pool if s.task == "rec"][:3]
    cap, asked = [], set()
    for s in pool:  # one caption per question: a region described twice has no single answer
        key = (s.image.id, s.prompt, tuple((r.kind, tuple(r.box)) for r in s.regions))
        if s.task == "caption" and len(enc([s.target])[0]) <= 12 and key not in asked:
            cap.append(s)
            asked.add(key)
    cap = cap[:3]
    ds = SampleDataset(rec + cap, dm.image_size, dm.mean, dm.std)
    batch = dm.collator([ds[i] for i in range(len(ds))])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
    lm = LMLoss()
    gen = None
    for step in range(1, max_steps + 1):
        model.train()
        loss = lm(model(batch)["logits"], batch["labels"])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVERY == 0:
            gen = model.generate(batch, max_new_tokens=16)
            if all(exact(model, batch, gen, dm.collator)):
                return step, gen, batch
    return None, gen, batch


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_overfit_to_exact_answers_with_the_right_stop(family, make_cfg, tmp_path_factory):
    path = family_dir(tmp_path_factory, family)
    cfg = make_cfg("model=hf_tiny", f"model.llm.path={path}")
    steps, gen, batch = overfit(cfg)
    print(f"{family}: exact answers after {steps} steps")
    assert steps is not None, list(zip(gen["texts"], [s.target for s in batch["samples"]]))
    assert [len(b) for b in gen["boxes"]] == [1, 1, 1, 0, 0, 0]  # REC boxes parsed
