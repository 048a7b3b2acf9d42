"""Training throughput: samples/s, tokens/s, peak memory and MFU for a model + trainer config.

    python bench/train.py [--steps 8] [--warmup 2] [--peak-tflops X] [--out F] [OVERRIDES...]
    python bench/train.py --dry-flops model=vicuna7b [--text-tokens 64]
    python bench/train.py --trainer [--steps 8] [--warmup 2] OVERRIDES...  # through Lightning

OVERRIDES are Hydra overrides of conf/train.yaml (``model=tiny data=synthetic ...``).
``--trainer`` runs the steps through Lightning's Trainer with the configured strategy and
precision (``trainer=fsdp``, ``ddp``, ``deepspeed_*``; several processes where the
trainer asks for them; see ``bench/meter.py``). Without it the loop is the align stage's
step (forward, AlignLoss, backward, optimizer step) on batches of the configured data
module, on CUDA when ``trainer.accelerator`` is gpu (bf16 autocast when
``trainer.precision`` is bf16-mixed).

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts one training step (forward +
backward; matmul, conv and attention kernels) on a real batch. Then

    MFU = counted FLOPs per step * steps/s / peak FLOP/s

with the peak from ``--peak-tflops`` or, on CUDA, the bf16 dense table below (H100/H200
SXM 989 TFLOP/s, A100 312). Without a peak (CPU) MFU is null. Memory: CPU peak RSS
(``resource.getrusage``, whole process) and tracemalloc's Python-heap peak; CUDA
``torch.cuda.max_memory_allocated``.

``--dry-flops`` counts without building weights (7B shapes need no GPU): per sample, with
P the weights a token passes through, T the tokens, L/H the layers/width,
forward = 2 P T + 4 L T^2 H (attention scores and values, full square as the counter
counts it); backward = 2x forward for trainable parts, 1x (input gradients only) for
frozen parts between a trainable part and the loss (the LLM behind the bridge), 0 for
frozen parts before every trainable one (the vision tower); the attention backward,
whenever gradients pass through it, depends on the attention implementation
(``attn=``): ``sdpa`` (fused kernels, the default of ``build_llm``) recompute the scores,
five products, 2.5x the forward; ``eager`` (two batched matmuls) keeps them, four
products, 2x the forward. Activation checkpointing adds one more forward of the
checkpointed part. ``bench/meter.py``'s ``flop_counter`` is FlopCounterMode plus the
fused CPU kernel that torch leaves uncounted, so both implementations count on CPU and
CUDA alike; on tiny shapes ``tests/scale`` checks this formula against it, per
implementation. Left out: the rotary-angle product (2 x d_head/2 x T per forward, a matmul
in transformers 4.x only) and elementwise work, which the counter does not count either.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_for(device: str, given: float | None) -> float | None:
    """``--peak-tflops`` if given, else the bf16 dense peak of a GPU named in ``device``."""
    return given or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device), None)


ATTN_BACKWARD = {"sdpa": (5, 2), "eager": (2, 1)}  # attention backward / forward FLOPs


def llm_flops(h, inter, layers, vocab, tokens, mode="trainable", ckpt=False, attn="sdpa") -> dict:
    """Forward / backward FLOPs of a LLaMA stack (q,k,v,o + gated MLP + lm_head) on T tokens,
    for the attention implementation ``attn`` (``sdpa``: fused, 5 backward products;
    ``eager``: 4)."""
    if attn not in ATTN_BACKWARD:
        raise ValueError(f"attn must be one of {sorted(ATTN_BACKWARD)}, got {attn!r}")
    per_layer = 4 * h * h + 3 * h * inter
    dense = 2 * tokens * (layers * per_layer + h * vocab)
    scores = 4 * layers * tokens**2 * h  # Q K^T and A V, full square
    fwd = dense + scores
    mult = {"trainable": 2, "input_grad": 1, "none": 0}[mode]
    num, den = ATTN_BACKWARD[attn]
    bwd = mult * dense + (num * scores // den if mode != "none" else 0)
    return {"forward": fwd, "backward": bwd + (fwd if ckpt and mode != "none" else 0)}


def vit_flops(width, layers, patch, image, mlp_ratio=4.0) -> dict:
    """A ViT tower up to ``layers`` blocks (frozen, before every trainable part: no backward)."""
    t = (image // patch) ** 2 + 1
    per_block = 4 * width * width + 2 * int(mlp_ratio * width) * width
    fwd = 2 * t * (layers * per_block + 3 * patch * patch * width) + 4 * layers * t**2 * width
    return {"forward": fwd, "backward": 0, "tokens": t}


def bridge_flops(vis_dim, dim, out_dim, queries, layers, patches, mlp_ratio) -> dict:
    """The query bridge (trainable): self-attention on the queries, cross-attention to patches."""
    m = int(mlp_ratio * dim)
    per = (4 * dim * dim * queries + 2 * dim * dim * queries + 2 * dim * dim * patches
           + 2 * m * dim * queries) * 2  # fmt: skip
    attn = 4 * dim * (queries * queries + queries * patches)
    fwd = 2 * patches * vis_dim * dim + layers * (per + attn) + 2 * queries * dim * out_dim
    return {"forward": fwd, "backward": 2 * fwd}


def dry_flops(cfg, text_tokens: int) -> dict:
    """FLOPs per sample at the configured model's shapes, analytically (see the docstring)."""
    import open_clip

    m = cfg.model
    vcfg = open_clip.get_model_config(m.vision.name)["vision_cfg"]
    used = vcfg["layers"] + m.vision.feature_layer + 1 if m.vision.feature_layer < 0 else None
    used = used or m.vision.feature_layer
    vision = vit_flops(vcfg["width"], used, vcfg["patch_size"], m.vision.image_size)
    lc, b = m.llm.config, m.bridge
    tokens = b.num_queries + text_tokens
    trainable_llm = m.trainable.llm is True
    mode = "trainable" if trainable_llm else "input_grad"
    llm = llm_flops(lc.hidden_size, lc.intermediate_size, lc.num_hidden_layers, lc.vocab_size,
                    tokens, mode, bool(m.llm.gradient_checkpointing))  # fmt: skip
    patches = vision["tokens"] - 1
    bridge = bridge_flops(vcfg["width"], b.dim, lc.hidden_size, b.num_queries, b.num_layers,
                          patches, b.mlp_ratio)  # fmt: skip
    parts = {"vision": vision, "bridge": bridge, "llm": llm}
    total = sum(p["forward"] + p["backward"] for p in parts.values())
    return {
        "model": m.vision.name + " + LLaMA " + f"{lc.num_hidden_layers}x{lc.hidden_size}",
        "llm_tokens_per_sample": tokens,
        "vision_tokens": vision["tokens"],
        "parts_tflop": {
            k: {kk: v[kk] / 1e12 for kk in ("forward", "backward")} for k, v in parts.items()
        },  # fmt: skip
        "tflop_per_sample": total / 1e12,
        "note": "region encoder, spatial decoder and contrastive heads left out (< 1%)",
    }


def compose(overrides: list[str]):
    """The training config; without Hydra's run folder, outputs go to a temporary folder."""
    import tempfile

    from tests.conftest import compose_train

    if not any(o.startswith("paths.output_dir=") for o in overrides):
        overrides = [*overrides, f"paths.output_dir={tempfile.mkdtemp(prefix='scalar-bench-')}"]
    return compose_train(overrides)


def _step(module, batch, opt, device, autocast):
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        out = module.model(batch)
        loss = module.loss(out, batch)["loss"]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def bench(cfg, steps: int, warmup: int, peak_tflops: float | None) -> dict:
    from hydra.utils import instantiate
    from meter import flop_counter

    from scalar.train.run import build_optim

    torch.manual_seed(int(cfg.seed))
    gpu = cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    autocast = gpu and str(cfg.trainer.precision).startswith("bf16-mixed")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    model = instantiate(cfg.model)
    optimizer, _ = build_optim(cfg)
    module = instantiate(cfg.stage.module)(model=model, loss=instantiate(cfg.loss),
                                           optimizer=optimizer, scheduler=None)  # fmt: skip
    module.to(device).train()
    opt = module.configure_optimizers()
    loader = iter(dm.train_dataloader())
    batches = [dm.transfer_batch_to_device(next(loader), device, 0) for _ in range(steps + warmup)]
    if not gpu:
        tracemalloc.start()
    counter = flop_counter()
    with counter:
        _step(module, batches[0], opt, device, autocast)
    flops_step = counter.get_total_flops()
    for b in batches[1:warmup]:
        _step(module, b, opt, device, autocast)
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    samples = tokens = 0
    t0 = time.perf_counter()
    for b in batches[warmup:]:
        _step(module, b, opt, device, autocast)
        samples += len(b["samples"])
        tokens += int(b["attention_mask"].sum()) + len(b["samples"]) * model.bridge.num_queries
    if gpu:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    res = {"steps": steps, "batch_size": int(cfg.data.loader.batch_size), "seconds": dt,
           "samples_per_s": samples / dt, "tokens_per_s": tokens / dt,
           "tokens_note": "LLM input tokens: text (attention_mask) + bridge queries",
           "flops_per_step": flops_step, "flops_per_sample": flops_step / len(batches[0]["samples"]),
           "achieved_tflops": flops_step * steps / dt / 1e12}  # fmt: skip
    if gpu:
        name = torch.cuda.get_device_name()
        res["device"] = name
        res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        peak_tflops = peak_for(name, peak_tflops)
    else:
        res["device"] = f"cpu ({platform.processor() or platform.machine()}, "
        res["device"] += f"{torch.get_num_threads()} threads)"
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    res["peak_tflops"] = peak_tflops
    res["mfu"] = res["achieved_tflops"] / peak_tflops if peak_tflops else None
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak TFLOP/s")
    p.add_argument("--dry-flops", action="store_true", help="count FLOPs/sample analytically")
    p.add_argument("--text-tokens", type=int, default=64, help="text tokens/sample (dry)")
    p.add_argument("--trainer", action="store_true", help="through Lightning's Trainer")
    p.add_argument("--out", default=None, help="write the result JSON here")
    args, overrides = p.parse_known_args(argv)
    cfg = compose(overrides)
    if args.dry_flops:
        res = dry_flops(cfg, args.text_tokens)
    elif args.trainer:
        from meter import bench_trainer

        res = bench_trainer(cfg, args.steps, max(1, args.warmup))
        if res is None:  # not rank 0
            return 0
        peak = res["peak_tflops"] = peak_for(res["device"], args.peak_tflops)
        res["mfu"] = res["achieved_tflops_per_rank"] / peak if peak else None
    else:
        res = bench(cfg, args.steps, max(1, args.warmup), args.peak_tflops)
    res["overrides"] = overrides
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
