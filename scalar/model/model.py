"""ScalarModel: vision tower + query bridge + causal LM + region encoder + spatial decoder.

Text sequences are ``[soft prefix (bridge queries), text tokens]``; every ``<region>``
token's input embedding is replaced by the region encoder's tokens (K per visual prompt)
and every ``<box>``/``<point>`` trigger's final hidden state queries the spatial decoder
over the patch tokens of its image. See ``scalar.core.batch`` for the batch contract.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalar.core import tokens as T
from scalar.model.families import family_ids
from scalar.model.llm import base_causal_lm, cache_argument, decoder_stack, is_lora

IGNORE = -100
PARTS = ("vision", "bridge", "llm", "region", "spatial", "contrastive", "new_tokens")


class ScalarModel(nn.Module):
    """The shared model of every stage.

    ``concept_encoder``: ``"embed"`` (masked mean of the LLM input embeddings of the
    concept text) or ``"hidden"`` (the LLM's last hidden state at the last text token).
    ``objectness``: add a class-agnostic objectness head, one logit per patch (part of the
    ``spatial`` part), trained by ``AlignLoss.objectness_weight`` on the annotated
    objects' boxes.
    """

    def __init__(
        self,
        vision: nn.Module,
        bridge: nn.Module,
        llm: nn.Module,
        region: nn.Module,
        spatial: nn.Module,
        tokenizer,
        contrastive_dim: int = 128,
        concept_encoder: str = "embed",
        objectness: bool = False,
    ):
        super().__init__()
        if concept_encoder not in ("embed", "hidden"):
            raise ValueError(
                f"concept_encoder must be 'embed' or 'hidden', got {concept_encoder!r}"
            )
        self.vision, self.bridge, self.llm = vision, bridge, llm
        self.region, self.spatial = region, spatial
        self.tokenizer = tokenizer
        self.new_tokens = None  # scalar.model.new_tokens.NewTokenRows when the LLM is frozen
        self.concept_encoder = concept_encoder
        self.hidden_size = base_causal_lm(llm).get_input_embeddings().embedding_dim
        self.region_tokens = int(region.num_tokens)
        self.num_prefix = int(bridge.num_queries)
        self.region_proj = nn.Linear(region.dim, contrastive_dim)
        self.concept_proj = nn.Linear(self.hidden_size, contrastive_dim)
        self.concept_query = nn.Linear(self.hidden_size, self.hidden_size)  # text -> decoder query
        # created last: the other parts draw the same initial weights with it or without it
        self.objectness = nn.Linear(vision.dim, 1) if objectness else None
        ids = {}
        for name, tok in (("region", T.REGION), ("box", T.BOX), ("point", T.POINT), ("sep", T.SEP)):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is None or tid == tokenizer.unk_token_id:
                raise ValueError(f"tokenizer has no {tok} token (load it with load_tokenizer)")
            ids[name] = tid
        self.region_id, self.box_id, self.point_id, self.sep_id = (
            ids["region"],
            ids["box"],
            ids["point"],
            ids["sep"],
        )
        self.eos_id, self.pad_id, self.bos_id = family_ids(tokenizer)
        ids_ = (self.region_id, self.sep_id, self.bos_id, self.pad_id)
        # never in an answer; the eos ends every answer even where bos or pad is the same id
        self.prompt_only_ids = tuple(i for i in ids_ if i is not None and i != self.eos_id)

    # ----------------------------------------------------------------- building blocks
    @property
    def causal_lm(self) -> nn.Module:
        return base_causal_lm(self.llm)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        embeds = self.causal_lm.get_input_embeddings()(ids)
        return embeds if self.new_tokens is None else self.new_tokens(ids, embeds)

    def lm_logits(self, hidden: Tensor) -> Tensor:
        """Next-token logits; tokens that only ever appear in prompts (``<region>``,
        ``<sep>``, ``<s>``, ``<pad>``) get -1e4, so no answer (greedy or sampled) has them."""
        head = self.causal_lm.get_output_embeddings()
        logits = head(hidden)
        if self.new_tokens is not None:
            logits = self.new_tokens(None, logits, hidden, head)
        index = torch.tensor(self.prompt_only_ids, device=logits.device)
        return logits.index_fill(-1, index[index < logits.shape[-1]], -1e4)

    def decode(
        self, embeds: Tensor, mask: Tensor, position_ids: Tensor, past=None, use_cache=False
    ):
        """Run the LLM's decoder stack: ``(last hidden state [B, L, H], cache)``."""
        decoder = decoder_stack(self.causal_lm)
        name = cache_argument(decoder)  # ``cache`` or, before transformers 5.x, past_key_values
        out = decoder(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=use_cache,
            return_dict=True,
            **{name: past},
        )
        return out.last_hidden_state, (getattr(out, name) if use_cache else None)

    def encode_images(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        return self.vision(images)

    def encode(self, batch: Mapping) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """``(patches [U, P, C], soft prefix [B, N, H], grid_hw)``.

        The vision tower and the bridge run once per distinct image (``images [U]``);
        each row gets its image's prefix through ``image_index [B]`` (when present).
        Everything that looks at patches maps batch rows to images with ``image_of``."""
        patches, grid_hw = self.encode_images(batch["images"])
        return patches, self.per_row(batch, self.bridge(patches)), grid_hw

    @staticmethod
    def image_of(batch: Mapping | None, rows: Tensor) -> Tensor:
        """Image indices (rows of ``images``) of batch ``rows``."""
        index = None if batch is None else batch.get("image_index")
        return rows if index is None else index.to(rows.device)[rows]

    @staticmethod
    def per_row(batch: Mapping, per_image: Tensor) -> Tensor:
        """``per_image [U, ...]`` -> ``[B, ...]``: each batch row gets its image's entry."""
        index = batch.get("image_index")
        return per_image if index is None else per_image[index.to(per_image.device)]

    def fill_regions(
        self, embeds: Tensor, ids: Tensor, patches: Tensor, grid_hw, batch: Mapping
    ) -> Tensor:
        """Replace the ``<region>`` embeddings by the region encoder's K tokens per prompt."""
        where = ids == self.region_id
        count, k = int(where.sum()), self.region_tokens
        boxes = batch.get("region_boxes")
        r = 0 if boxes is None else len(boxes)
        if count != r * k:
            raise ValueError(
                f"the text has {count} <region> tokens but {r} visual prompts x {k} region "
                f"tokens = {r * k} were expected (each prompt occupies K={k} consecutive "
                "<region> tokens)"
            )
        if r == 0:
            return embeds
        rows, cols = where.nonzero(as_tuple=True)
        rows, cols = rows.view(r, k), cols.view(r, k)
        rb = batch["region_batch"].to(ids.device)
        if not bool((rows == rb[:, None]).all()) or not bool((cols.diff(dim=1) == 1).all()):
            raise ValueError(
                "region_batch does not match the <region> tokens: each prompt needs K "
                "consecutive <region> tokens in its own row, in row-major order"
            )
        enc = self.region(
            patches,
            grid_hw,
            boxes.to(patches.device),
            batch["region_kinds"].to(ids.device),
            self.image_of(batch, rb),
            batch.get("region_masks"),
        )
        tokens = enc["tokens"].to(embeds.dtype).reshape(-1, embeds.shape[-1])
        return embeds.masked_scatter(where[..., None], tokens)

    def build_inputs(
        self, ids: Tensor, mask: Tensor, patches: Tensor, grid_hw, batch: Mapping, soft=None
    ):
        """``(inputs_embeds, attention_mask, position_ids)`` of ``[soft prefix, text]``
        (``soft``: the bridge's prefix of each row when already computed)."""
        embeds = self.fill_regions(self.embed_tokens(ids), ids, patches, grid_hw, batch)
        if soft is None:
            soft = self.per_row(batch, self.bridge(patches))
        soft = soft.to(embeds.dtype)
        inputs = torch.cat([soft, embeds], dim=1)
        ones = mask.new_ones(mask.shape[0], soft.shape[1])
        full = torch.cat([ones, mask], dim=1)
        return inputs, full, (full.long().cumsum(-1) - 1).clamp(min=0)

    def predict_boxes(
        self, queries: Tensor, rows: Tensor, kinds: Tensor, patches: Tensor, grid_hw, batch=None
    ) -> dict[str, Tensor]:
        """Spatial decoder on trigger hidden states ``[N, H]`` of batch ``rows`` (their
        images through ``batch``'s ``image_index``; without a batch, rows are images)."""
        dtype = next(self.spatial.parameters()).dtype
        images = self.image_of(batch, rows)
        return self.spatial(queries.to(dtype), patches.to(dtype), grid_hw, kinds, images)

    def trigger_mask(self, ids: Tensor) -> Tensor:
        return (ids == self.box_id) | (ids == self.point_id)

    # ----------------------------------------------------------------- forward
    def forward(self, batch: Mapping) -> dict:
        """Teacher-forced pass. Returns ``logits [B, T, V]`` and ``hidden [B, T, H]``
        aligned to ``input_ids``; ``box_pred [N, 4]`` (plus ``box_kind``, ``box_batch``,
        ``box_attn``, ``box_attn_logits``, ``box_offset``, ``box_size``) for the answer's
        triggers in row-major order; ``region_emb`` and ``concept_emb [C, E]``
        (L2-normalised) when ``concept_*`` keys are present.
        """
        ids, mask = batch["input_ids"], batch["attention_mask"]
        patches, soft, grid_hw = self.encode(batch)
        inputs, full, pos = self.build_inputs(ids, mask, patches, grid_hw, batch, soft)
        hidden = self.decode(inputs, full, pos)[0][:, self.num_prefix :]
        out = {"logits": self.lm_logits(hidden), "hidden": hidden, "grid_hw": grid_hw}
        trig = self.trigger_mask(ids)
        labels = batch.get("labels")
        trig &= (labels != IGNORE) if labels is not None else mask.bool()
        rows, cols = trig.nonzero(as_tuple=True)
        kinds = (ids[rows, cols] == self.point_id).long()
        sp = self.predict_boxes(hidden[rows, cols], rows, kinds, patches, grid_hw, batch)
        out.update(
            box_pred=sp["boxes"],
            box_kind=kinds,
            box_batch=rows,
            box_attn=sp["attn"],
            box_attn_logits=sp["attn_logits"],
            box_offset=sp["offset"],
            box_size=sp["size"],
            box_centre=sp["centre"],
        )
        if "cell_boxes" in sp:  # the cells box head: every cell's box (AlignLoss.cell_box_weight)
            out["cell_boxes"] = sp["cell_boxes"]
        if "concept_input_ids" in batch:
            out.update(self.encode_concepts(batch, patches, grid_hw))
        if self.objectness is not None:
            out["objectness_logits"] = self.objectness_logits(patches)
        return out

    def objectness_logits(self, patches: Tensor) -> Tensor:
        """``[U, P]``: the objectness head's logit of every patch (needs ``objectness``)."""
        head = self.objectness
        return head(patches.to(head.weight.dtype)).squeeze(-1)

    def encode_concepts(self, batch: Mapping, patches: Tensor, grid_hw) -> dict[str, Tensor]:
        """Region embeddings of ``concept_boxes`` and text embeddings of ``concept_input_ids``."""
        boxes, cb = batch["concept_boxes"], batch["concept_batch"].to(patches.device)
        kinds = torch.zeros(len(boxes), dtype=torch.long, device=patches.device)
        images = self.image_of(batch, cb)
        pooled = self.region(patches, grid_hw, boxes.to(patches.device), kinds, images)["pooled"]
        region = self.region_proj(pooled.to(self.region_proj.weight.dtype))
        ids, m = batch["concept_input_ids"], batch["concept_attention_mask"]
        emb = self.embed_tokens(ids)
        mf = m.to(emb.dtype)[..., None]
        if self.concept_encoder == "embed":
            text = (emb * mf).sum(1) / mf.sum(1).clamp(min=1.0)
        else:
            pos = (m.long().cumsum(-1) - 1).clamp(min=0)
            h = self.decode(emb, m, pos)[0]
            last = (m.long() * torch.arange(m.shape[1], device=m.device)).argmax(-1)
            text = h[torch.arange(len(h), device=h.device), last]
        concept = self.concept_proj(text.to(self.concept_proj.weight.dtype))
        out = {
            "region_emb": F.normalize(region, dim=-1),
            "concept_emb": F.normalize(concept, dim=-1),
        }
        ground = batch.get("concept_ground")
        if ground is not None and bool(ground.any()):
            # dense concept grounding: every level naming one object queries the decoder
            sel = ground.to(patches.device).nonzero(as_tuple=True)[0]
            query = self.concept_query(text[sel].to(self.concept_query.weight.dtype))
            kinds = torch.zeros(len(sel), dtype=torch.long, device=patches.device)
            sp = self.predict_boxes(query, cb[sel], kinds, patches, grid_hw, batch)
            out.update(concept_box_pred=sp["boxes"], concept_box_attn=sp["attn"])
        return out

    # ----------------------------------------------------------------- generation
    def generate(self, batch: Mapping, **kwargs) -> dict:
        """Batched generation with a KV cache; see :func:`scalar.model.generate.generate`."""
        from scalar.model.generate import generate

        return generate(self, batch, **kwargs)

    # ----------------------------------------------------------------- trainable parts
    def part_modules(self, part: str) -> list[nn.Module]:
        if part not in PARTS:
            raise ValueError(f"unknown model part {part!r} (parts: {', '.join(PARTS)})")
        if part == "contrastive":
            return [self.region_proj, self.concept_proj, self.concept_query]
        if part == "new_tokens":  # trainable rows of the added tokens (frozen / LoRA LLM)
            return [] if self.new_tokens is None else [self.new_tokens]
        if part == "spatial" and self.objectness is not None:
            return [self.spatial, self.objectness]
        return [getattr(self, part)]

    def set_trainable(self, spec: Mapping[str, bool | str]) -> None:
        """``{part: False | True}`` for vision/bridge/region/spatial/contrastive; ``llm``
        also takes ``"lora"`` (only the adapters train). Parts not named keep their state.
        """
        for part, value in dict(spec).items():
            modules = self.part_modules(part)
            if part == "llm" and value == "lora":
                if not is_lora(self.llm):
                    raise ValueError("trainable llm=lora needs LoRA adapters: set model.llm.lora")
                for name, p in self.llm.named_parameters():
                    p.requires_grad_("lora_" in name)
                continue
            if not isinstance(value, bool):
                raise ValueError(
                    f"trainable.{part} must be true or false (llm: or lora), got {value!r}"
                )
            if part == "vision":
                self.vision.set_frozen(not value)
                continue
            for module in modules:
                for p in module.parameters():
                    p.requires_grad_(value)

    def trainable_parameter_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]
