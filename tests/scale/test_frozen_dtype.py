"""Frozen towers in bf16, trainable parts fp32: what the optimizer holds and a training step."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import open_dict


def test_frozen_parts_bf16_trainable_fp32_optimizer_only_trainable(make_cfg):
    from scalar.train.run import build_optim

    cfg = make_cfg(
        "model.trainable.vision=false", "model.trainable.llm=false",
        "model.frozen_dtype=bfloat16", "loss=none",
    )  # fmt: skip
    with open_dict(cfg):
        cfg.data.tasks.train = {"rec": 1.0}
    model = instantiate(cfg.model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("vision.") for n in frozen) and any(
        n.startswith("llm.") for n in frozen
    )
    assert all(n.split(".")[0] not in ("vision", "llm") for n in trainable) and trainable
    for name, p in model.named_parameters():
        want = torch.float32 if p.requires_grad else torch.bfloat16
        assert p.dtype == want, (name, p.dtype)
    bn = [m for m in model.vision.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(m.running_mean.dtype == torch.bfloat16 for m in bn)

    optimizer, _ = build_optim(cfg)
    module = instantiate(cfg.stage.module)(model=model, loss=instantiate(cfg.loss),
                                           optimizer=optimizer, scheduler=None)  # fmt: skip
    opt = module.configure_optimizers()
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for n, p in model.named_parameters() if n in trainable}

    dm = instantiate(cfg.data)
    dm.setup("fit")
    batch = dm.collator([dm._dataset("train")[i] for i in range(3)])
    module.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = module.loss(model(batch), batch)["loss"]
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)
    for n, p in model.named_parameters():
        moved = not torch.equal(p, before[n])
        if n in frozen:
            assert not moved and p.dtype == torch.bfloat16, n
        elif p.grad is not None and bool(p.grad.abs().sum()):
            assert moved and p.dtype == torch.float32, n
    assert all(not opt.state[p] or opt.state[p]["exp_avg"].dtype == torch.float32
               for g in opt.param_groups for p in g["params"])  # fmt: skip
