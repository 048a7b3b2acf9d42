"""scripts/consolidate_fsdp.py on a sharded checkpoint written in one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from consolidate_fsdp import consolidate  # noqa: E402


def _sharded(tmp_path: Path) -> tuple[Path, dict, dict]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 3))
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(4, 5)).sum().backward()
    opt.step()
    model = {f"model.{k}": v.clone() for k, v in net.state_dict().items()}
    optim = opt.state_dict()
    folder = tmp_path / "last.ckpt"
    # Lightning's sharded layout: model + optimizer_<i> in the shards, the rest in meta.pt
    dcp.save({"model": model, "optimizer_0": optim}, checkpoint_id=folder)
    meta = {"global_step": 7, "epoch": 1, "loops": {"fit_loop": {"x": 1}}}
    torch.save(meta, folder / "meta.pt")
    return folder, model, optim


def test_consolidate_lightning_sharded_folder(tmp_path):
    folder, model, optim = _sharded(tmp_path)
    assert (folder / ".metadata").is_file() and list(folder.glob("*.distcp"))
    out = tmp_path / "full.ckpt"
    consolidate(folder, out)
    ckpt = torch.load(out, weights_only=False)
    assert ckpt["global_step"] == 7 and ckpt["loops"] == {"fit_loop": {"x": 1}}
    assert set(ckpt["state_dict"]) == set(model)
    for k, v in model.items():
        assert torch.equal(ckpt["state_dict"][k], v)
    (got,) = ckpt["optimizer_states"]
    assert len(got["state"]) == len(optim["state"]) == 6
    for idx, state in optim["state"].items():
        saved = got["state"].get(idx, got["state"].get(str(idx)))  # dcp keys may be strings
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(saved[name]), torch.as_tensor(value))

    from scalar.train.checkpoint import load_weights

    net = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 3))
    assert load_weights(net, out) == len(model)  # init_from= reads it
    assert torch.equal(net[0].weight, model["model.0.weight"])


def test_model_only_and_cli(tmp_path, capsys):
    folder, model, _ = _sharded(tmp_path)
    out = tmp_path / "w.ckpt"
    script = ROOT / "scripts" / "consolidate_fsdp.py"
    proc = subprocess.run([sys.executable, str(script), str(folder), str(out), "--model-only"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ckpt = torch.load(out, weights_only=False)
    assert "optimizer_states" not in ckpt and set(ckpt["state_dict"]) == set(model)
    from consolidate_fsdp import main

    assert main([str(tmp_path), str(out)]) == 2
    err = capsys.readouterr().err
    assert "no .metadata" in err and err.count("\n") == 1
