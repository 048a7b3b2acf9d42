"""ScalarModel: forward contract, frozen vs trainable after a step, LoRA + checkpointing."""

import pytest
import torch
import torch.nn.functional as F

from scalar.core import tokens as T

from .conftest import build_batch


def _loss(out, batch):
    lm = F.cross_entropy(
        out["logits"][:, :-1].reshape(-1, out["logits"].shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
    )
    box = (out["box_pred"] - batch["target_boxes"]).pow(2).mean()
    con = (out["region_emb"] @ out["concept_emb"].T).diagonal().mean()
    dense = out["concept_box_pred"].pow(2).mean()
    return lm + box - con + dense


def _row(batch, r):
    """Row ``r`` of a contract batch, on its own (no padding)."""
    n = int(batch["attention_mask"][r].sum())
    sel = batch["region_batch"] == r
    return {
        "images": batch["images"][r : r + 1],
        "input_ids": batch["input_ids"][r : r + 1, :n],
        "attention_mask": batch["attention_mask"][r : r + 1, :n],
        "labels": batch["labels"][r : r + 1, :n],
        "region_boxes": batch["region_boxes"][sel],
        "region_kinds": batch["region_kinds"][sel],
        "region_masks": batch["region_masks"][sel],
        "region_batch": torch.zeros(int(sel.sum()), dtype=torch.long),
    }


def test_forward_aligns_logits_and_boxes_with_input_ids(model, batch):
    model.eval()
    out = model(batch)
    ids = batch["input_ids"]
    assert out["logits"].shape == (*ids.shape, model.causal_lm.config.vocab_size)
    assert out["hidden"].shape == (*ids.shape, model.hidden_size)
    # trigger positions of the answers, found independently, row-major
    trig = [
        (r, c)
        for r in range(ids.shape[0])
        for c in range(ids.shape[1])
        if int(ids[r, c]) in (model.box_id, model.point_id) and int(batch["labels"][r, c]) != -100
    ]
    assert len(trig) == len(batch["target_boxes"]) == len(out["box_pred"]) == 3
    assert out["box_batch"].tolist() == batch["target_batch"].tolist()
    assert out["box_kind"].tolist() == [0, 1, 0]
    patches, grid = model.vision(batch["images"])
    for j, (r, c) in enumerate(trig):
        kind = torch.tensor([int(ids[r, c] == model.point_id)])
        ref = model.spatial(out["hidden"][r, c][None], patches[r][None], grid, kind=kind)
        assert torch.allclose(out["box_pred"][j], ref["boxes"][0], atol=1e-5)
    # each row alone (no padding, no other rows) gives the same logits as in the batch
    for r in range(3):
        alone = model(_row(batch, r))
        n = alone["logits"].shape[1]
        assert torch.allclose(alone["logits"][0], out["logits"][r, :n], atol=1e-4)


def test_prompt_triggers_are_not_queried(model, batch):
    labels = batch["labels"].clone()
    c = int((batch["input_ids"][0] == model.box_id).nonzero()[0, 0])
    labels[0, c] = -100
    out = model({**batch, "labels": labels})
    assert out["box_batch"].tolist() == [2, 2]


def test_fill_replaces_region_tokens_by_encoder_output(model, batch):
    model.eval()
    ids = batch["input_ids"]
    patches, grid = model.vision(batch["images"])
    emb = model.embed_tokens(ids)
    filled = model.fill_regions(emb, ids, patches, grid, batch)
    enc = model.region(
        patches, grid, batch["region_boxes"], batch["region_kinds"], batch["region_batch"],
        batch["region_masks"],
    )["tokens"]  # fmt: skip
    k = model.region_tokens
    pos = [(r, c) for r in range(3) for c in range(ids.shape[1]) if ids[r, c] == model.region_id]
    assert len(pos) == 3 * k
    for i, (r, c) in enumerate(pos):
        assert torch.allclose(filled[r, c], enc[i // k, i % k])
    other = ids != model.region_id
    assert torch.equal(filled[other], emb[other])


def test_wrong_region_token_count_gives_a_clear_error(model, tokenizer, batch):
    bad = build_batch(tokenizer, model.region_tokens + 1)
    with pytest.raises(ValueError, match=r"<region> tokens but 3 visual prompts"):
        model(bad)
    with pytest.raises(ValueError, match="region_batch does not match"):
        model({**batch, "region_batch": torch.tensor([2, 1, 2])})


def _step(model, batch, steps=1):
    """AdamW steps; checks after the first backward that every trainable got a gradient.

    (Zero-initialised layers - the last BatchNorm of each residual branch, LoRA's B - leave
    the layers before them a zero gradient in the very first step, so a second step is
    what shows that they train.)
    """
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.0)
    model.train()
    for i in range(steps):
        opt.zero_grad(set_to_none=False)
        _loss(model(batch), batch).backward()
        if i == 0:
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, missing
        opt.step()
    return before, buffers


def test_one_step_changes_every_trainable_and_nothing_else_lora(make_model, tokenizer):
    model = make_model(
        vision={"freeze": True},
        llm={"freeze": True, "lora": {"r": 4}},
        trainable={"vision": False, "llm": "lora"},
    )
    with pytest.raises(ValueError):
        model.set_trainable({"llm": "sometimes"})
    batch = build_batch(tokenizer, model.region_tokens)
    before, buffers = _step(model, batch, steps=2)
    names = set(model.trainable_parameter_names())
    assert names and not any(n.startswith("vision.") for n in names)
    llm_names = {n for n in names if n.startswith("llm.")}
    assert llm_names and all("lora_" in n for n in llm_names)
    for part in ("bridge.", "region.", "spatial.", "region_proj.", "concept_proj."):
        assert any(n.startswith(part) for n in names)
    for n, p in model.named_parameters():
        if n in names:
            assert p.grad is not None, n
            assert not torch.equal(p, before[n]), n
        else:
            assert p.grad is None and torch.equal(p, before[n]), n
    for n, b in model.named_buffers():  # frozen BatchNorm statistics stay put
        if n.startswith("vision."):
            assert torch.equal(b, buffers[n]), n


def test_lora_needs_adapters(model):
    with pytest.raises(ValueError, match="model.llm.lora"):
        model.set_trainable({"llm": "lora"})


def test_one_step_changes_every_parameter_when_all_train(model, batch):
    names = model.trainable_parameter_names()
    assert len(names) == len(list(model.parameters()))
    before, _ = _step(model, batch, steps=2)
    for n, p in model.named_parameters():
        assert p.grad is not None, n
        assert not torch.equal(p, before[n]), n


def test_gradient_checkpointing_with_lora_backward(make_model, tokenizer):
    kw = dict(vision={"freeze": True}, trainable={"vision": False, "llm": "lora"})
    lora = {"freeze": True, "lora": {"r": 4, "dropout": 0.0}}
    ckpt = make_model(seed=3, llm={**lora, "gradient_checkpointing": True}, **kw)
    plain = make_model(seed=3, llm=lora, **kw)
    flag = "is_activation_checkpointing"
    if not hasattr(ckpt.causal_lm, flag):
        flag = "is_gradient_checkpointing"
    assert getattr(ckpt.causal_lm, flag) and not getattr(plain.causal_lm, flag)
    batch = build_batch(tokenizer, ckpt.region_tokens)
    losses, grads = [], []
    for m in (plain, ckpt):
        m.train()
        loss = _loss(m(batch), batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in m.named_parameters() if "lora_B" in n})
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    assert grads[1] and all(g is not None and g.abs().sum() > 0 for g in grads[1].values())
    for n, g in grads[1].items():
        assert torch.allclose(g, grads[0][n], atol=1e-6), n


def test_concept_embeddings(make_model, tokenizer):
    for encoder in ("embed", "hidden"):
        model = make_model(concept_encoder=encoder).eval()
        batch = build_batch(tokenizer, model.region_tokens)
        out = model(batch)
        assert out["region_emb"].shape == out["concept_emb"].shape == (4, 16)
        assert torch.allclose(out["concept_emb"].norm(dim=-1), torch.ones(4), atol=1e-5)
        ids, m = batch["concept_input_ids"], batch["concept_attention_mask"]
        emb = model.embed_tokens(ids[1, : int(m[1].sum())])
        if encoder == "embed":  # masked mean ignores padding
            ref = F.normalize(model.concept_proj(emb.mean(0)), dim=-1)
            assert torch.allclose(out["concept_emb"][1], ref, atol=1e-5)


@pytest.mark.parametrize("arch", ["opt", "qwen2"])
def test_other_causal_lms(make_model, tokenizer, arch):
    cfg = {"model_type": arch, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    cfg.update(
        {"ffn_dim": 64, "word_embed_proj_dim": 32, "max_position_embeddings": 128}
        if arch == "opt"
        else {"intermediate_size": 64, "num_key_value_heads": 1}
    )
    model = make_model(llm_config=cfg).eval()
    assert model.causal_lm.config.model_type == arch
    assert model.causal_lm.config.vocab_size >= len(tokenizer)
    batch = build_batch(tokenizer, model.region_tokens)
    out = model(batch)
    assert out["box_pred"].shape == (3, 4)
    alone = model(_row(batch, 2))
    n = alone["logits"].shape[1]
    assert torch.allclose(alone["logits"][0], out["logits"][2, :n], atol=1e-4)
    g1 = model.generate(batch, max_new_tokens=5)
    g2 = model.generate(batch, max_new_tokens=5, use_cache=False)
    assert torch.equal(g1["tokens"], g2["tokens"])
    assert torch.allclose(g1["logprobs"], g2["logprobs"], atol=1e-4)


def test_special_token_ids(model, tokenizer):
    assert model.box_id == tokenizer.convert_tokens_to_ids(T.BOX)
    assert model.region_id == tokenizer.convert_tokens_to_ids(T.REGION)
    assert model.eos_id == tokenizer.eos_token_id != model.pad_id


def test_bf16_llm_with_fp32_parts(make_model, tokenizer):
    model = make_model(llm={"dtype": "bfloat16"}).eval()
    assert model.causal_lm.dtype == torch.bfloat16
    assert model.bridge.queries.dtype == torch.float32
    batch = build_batch(tokenizer, model.region_tokens)
    out = model(batch)
    assert out["logits"].dtype == torch.bfloat16 and torch.isfinite(out["box_pred"]).all()
    res = model.generate(batch, max_new_tokens=4)
    assert res["tokens"].shape[0] == 3 and torch.isfinite(res["logprobs"]).all()


def test_rows_sharing_an_image_equal_rows_with_their_own_copy(model, batch):
    # rows 0 and 2 show the same image: sent once with image_index, or twice without
    model.eval()
    batch["images"][2] = batch["images"][0]
    shared = dict(batch, images=batch["images"][:2], image_index=torch.tensor([0, 1, 0]))
    out, ref = model(batch), model(shared)
    for key in ("logits", "box_pred", "region_emb", "concept_emb"):
        assert torch.allclose(out[key], ref[key], atol=1e-5), key
    gen = model.generate(batch, max_new_tokens=4)
    gen_shared = model.generate(shared, max_new_tokens=4)
    assert torch.equal(gen["tokens"], gen_shared["tokens"])


def test_dense_concept_grounding_queries_the_decoder_with_each_grounded_text(model, tokenizer):
    model.eval()
    batch = build_batch(tokenizer, model.region_tokens)
    del batch["concept_ground"]
    assert "concept_box_pred" not in model(batch)  # no concept_ground: nothing grounded
    batch["concept_ground"] = torch.tensor([True, False, False, True])
    out = model(batch)
    assert out["concept_box_pred"].shape == (2, 4)
    patches, grid = model.vision(batch["images"])
    ids, m = batch["concept_input_ids"], batch["concept_attention_mask"]
    for j, c in enumerate([0, 3]):
        text = model.embed_tokens(ids[c, : int(m[c].sum())]).mean(0)
        row = int(batch["concept_batch"][c])
        ref = model.spatial(model.concept_query(text)[None], patches[row][None], grid)
        assert torch.allclose(out["concept_box_pred"][j], ref["boxes"][0], atol=1e-5)


def test_prompt_only_tokens_are_never_answers(model, tokenizer, batch):
    out = model(batch)
    ids = tokenizer.convert_tokens_to_ids
    for tok in (T.REGION, T.SEP, T.BOS, T.PAD):
        assert (out["logits"][..., ids(tok)] == -1e4).all(), tok
    assert (out["logits"][..., ids(T.BOX)] > -1e4).all()
    gen = model.generate(batch, max_new_tokens=6, do_sample=True, temperature=5.0)
    banned = torch.tensor([ids(t) for t in (T.REGION, T.SEP, T.BOS)])
    assert not torch.isin(gen["tokens"], banned).any()


def test_hidden_concept_embeddings_equal_a_direct_forward_pass(make_model, tokenizer):
    """``concept_encoder=hidden``: the LLM's own forward on the unpadded concept text (ids,
    no image prefix), last layer's state at the last token, projected and normalised."""
    model = make_model(concept_encoder="hidden").eval()
    batch = build_batch(tokenizer, model.region_tokens)
    out = model(batch)
    ids, m = batch["concept_input_ids"], batch["concept_attention_mask"]
    assert bool((m.sum(1) < m.shape[1]).any())  # some rows are padded
    for i in range(len(ids)):
        n = int(m[i].sum())
        with torch.no_grad():
            h = model.llm(input_ids=ids[i : i + 1, :n], output_hidden_states=True).hidden_states
        ref = F.normalize(model.concept_proj(h[-1][0, n - 1]), dim=-1)
        assert torch.allclose(out["concept_emb"][i], ref, atol=1e-5), i
    # and they differ from the input-embedding mean of the default encoder
    embed = make_model(concept_encoder="embed").eval()
    embed.load_state_dict(model.state_dict())
    assert not torch.allclose(embed(batch)["concept_emb"], out["concept_emb"], atol=1e-3)


def test_objectness_head_is_optional_and_leaves_the_other_weights_alone(make_model, tokenizer):
    plain, with_head = make_model(seed=3), make_model(seed=3, objectness=True)
    assert plain.objectness is None and "objectness_logits" not in plain(build_batch(tokenizer, 2))
    ours = dict(with_head.named_parameters())
    for name, p in plain.named_parameters():  # same initial weights with or without the head
        assert torch.equal(p, ours[name]), name
    batch = build_batch(tokenizer, 2)
    out = with_head(batch)
    patches, grid_hw = with_head.encode_images(batch["images"])
    want = patches @ with_head.objectness.weight[0] + with_head.objectness.bias[0]
    assert out["objectness_logits"].shape == (len(batch["images"]), grid_hw[0] * grid_hw[1])
    assert torch.allclose(out["objectness_logits"], want, atol=1e-6)
    with_head.set_trainable({"spatial": False})  # the head belongs to the spatial part
    assert not with_head.objectness.weight.requires_grad
