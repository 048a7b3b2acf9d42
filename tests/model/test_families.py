"""Real LLM families (tiny random-init LLaMA, Qwen2, OPT, GPT-2 directories with their own
tokenizers): region prompts, answer ends, generation stops, LoRA presets, new-token rows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalar.core import tokens as T
from scalar.core.tokenizer import load_tokenizer
from scalar.data.collate import IGNORE, Collator
from scalar.data.sample import Sample, VisualPrompt
from scalar.data.scene import ImageInfo
from scalar.model.build import build_model
from scalar.model.families import lora_targets
from tests.families import FAMILIES, family_dir
from tests.model.conftest import tiny_parts

END = "<|endoftext|>"
ROLES = {  # (bos, eos, pad) after load_tokenizer: the family's own, pad = eos where it has none
    "llama": ("<s>", "</s>", "</s>"),
    "qwen2": (None, END, END),
    "opt": ("</s>", "</s>", "<pad>"),
    "gpt2": (END, END, END),
}


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _model(tmp_path_factory, family, seed=0, **over):
    parts = tiny_parts(llm=dict(path=str(family_dir(tmp_path_factory, family)), freeze=False))
    parts["llm"].pop("config")
    parts.update(over)
    torch.manual_seed(seed)
    return build_model(**parts)


def _batch(tok, samples):
    items = [{"sample": s, "image": torch.rand(3, 64, 64)} for s in samples]
    return Collator(tok, region_tokens=2, mask_size=8)(items)


def _samples():
    image = ImageInfo(id=1, path="a.png", width=100, height=80)
    box = VisualPrompt("box", (10.0, 10.0, 50.0, 40.0))
    return [
        Sample("roc", image, f"what is {T.REGION}?", "red circle", [box], [], {}),
        Sample("rec", image, "where is the blue square?", T.BOX, [], [(5, 5, 30, 30)], {}),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_keep_neighbours_and_roles(tmp_path_factory, family):
    tok = load_tokenizer(family_dir(tmp_path_factory, family))
    bos, eos, pad = ROLES[family]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (bos, eos, pad)
    region, box = tok.convert_tokens_to_ids(T.REGION), tok.convert_tokens_to_ids(T.BOX)
    ids = _ids(tok, f"what is {T.REGION} {T.REGION} {T.REGION}?")
    where = [i for i, t in enumerate(ids) if t == region]
    assert len(where) == 3 and where == list(range(where[0], where[0] + 3))
    a, b = "the red circle", "left of the square"
    ids = _ids(tok, f"{a} {T.BOX} {b}")
    i = ids.index(box)
    assert ids[:i] == _ids(tok, a)  # the text before keeps its tokens, no lone-space token
    assert tok.decode(ids[i + 1 :]) == b and tok.decode(ids[:i]).strip() == a


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_end_with_the_family_eos_which_stays_predictable(tmp_path_factory, family):
    model = _model(tmp_path_factory, family)
    tok = model.tokenizer
    batch = _batch(tok, _samples())
    row, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n = int(batch["attention_mask"][0].sum())
    if tok.bos_token_id is None:
        assert row[0] == _ids(tok, "what")[0]  # Qwen2: no bos
    else:
        assert row[0] == tok.bos_token_id
    assert row[n - 1] == tok.eos_token_id and labels[n - 1] == tok.eos_token_id
    target = [t for t in labels if t != IGNORE]
    assert target == [*_ids(tok, "red circle"), tok.eos_token_id]
    logits = model.lm_logits(torch.zeros(1, model.hidden_size))[0]
    assert logits[tok.eos_token_id] > -1e3  # never masked, even where bos or pad is the eos
    assert logits[model.region_id] == -1e4 and logits[model.sep_id] == -1e4
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert out["box_pred"].shape == (1, 4)  # the REC row's <box> trigger


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_stops_on_the_family_eos(tmp_path_factory, family):
    model = _model(tmp_path_factory, family)
    eos = model.tokenizer.eos_token_id
    batch = _batch(model.tokenizer, _samples())

    def end_at_step_2(step, tokens, logits):  # the eos ahead by 50 at the second step
        return logits + 50.0 * (step == 1) * nn.functional.one_hot(
            torch.tensor(eos), logits.shape[-1]
        )

    out = model.generate(batch, max_new_tokens=12, logits_processor=end_at_step_2)
    assert out["lengths"].tolist() == [2, 2]
    assert out["tokens"][:, 1].tolist() == [eos, eos]
    assert out["tokens"].shape[1] == 2  # every row stopped: no 12-token run


def _linear_leaves_model():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in, self.fc_out = nn.Linear(4, 4), nn.Linear(4, 4)

    model = nn.Sequential(Block())
    model.config = type("Cfg", (), {"model_type": "mystery"})()
    return model


@pytest.mark.parametrize(
    ("family", "targets"),
    [("llama", ["q_proj", "v_proj"]), ("qwen2", ["q_proj", "v_proj"]),
     ("opt", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"])],
)  # fmt: skip
def test_lora_presets_and_trainable_rows(tmp_path_factory, family, targets):
    lora = dict(path=str(family_dir(tmp_path_factory, family)), freeze=True,
                lora={"r": 4, "dropout": 0.0})  # fmt: skip
    spec = dict(vision=False, llm="auto")
    model = _model(tmp_path_factory, family, llm=lora, trainable=spec)
    assert set(model.llm.peft_config["default"].target_modules) == set(targets)
    names = model.trainable_parameter_names()
    llm_names = [n for n in names if n.startswith("llm.")]
    assert llm_names and all("lora_" in n for n in llm_names)
    assert {n for n in names if n.startswith("new_tokens.")} >= {"new_tokens.input_rows"}
    rows = model.new_tokens
    assert set(rows.token_ids) >= {model.region_id, model.box_id, model.tokenizer.eos_token_id}
    emb = model.causal_lm.get_input_embeddings().weight.detach().clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = _batch(model.tokenizer, _samples())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    out = model(batch)
    logits, labels = out["logits"][:, :-1], batch["labels"][:, 1:]
    nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)).backward()
    opt.step()
    assert torch.equal(model.causal_lm.get_input_embeddings().weight, emb)  # frozen rows
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "new_tokens.input_rows" in changed and any("lora_B" in n for n in changed)
    assert changed <= set(names)
    # the checkpoint's weights rebuild the same model bit for bit
    again = _model(tmp_path_factory, family, seed=5, llm=lora, trainable=spec)
    again.load_state_dict(model.state_dict(), strict=True)
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(batch)["logits"], again(batch)["logits"])


def test_lora_errors_say_what_to_set(tmp_path_factory):
    lora = dict(path=str(family_dir(tmp_path_factory, "gpt2")), freeze=True, lora={"r": 4})
    with pytest.raises(ValueError, match="set model.trainable.llm=lora"):
        _model(tmp_path_factory, "gpt2", llm=lora, trainable=dict(llm=False))
    with pytest.raises(ValueError, match=r"\['q_proj'\] are not layers of this gpt2 model"):
        _model(tmp_path_factory, "gpt2", llm={**lora, "lora": {"target_modules": ["q_proj"]}},
               trainable=dict(llm="lora"))  # fmt: skip
    with pytest.raises(ValueError, match=r"model_type 'mystery'.*\['fc_in', 'fc_out'\]"):
        lora_targets(_linear_leaves_model())
