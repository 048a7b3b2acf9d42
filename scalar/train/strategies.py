"""Helpers for strategy configs: FSDP wrapping and activation-checkpointing policies, and
one recompute of each block (gradient clipping under every strategy is
:mod:`scalar.stages.clipping`)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from scalar.core.errors import UserError


def import_class(path: str) -> type:
    """``"pkg.module.Class"`` -> the class; a bad path is a :class:`UserError` naming it."""
    module_name, _, name = str(path).rpartition(".")
    if not module_name:
        raise UserError(f"not a dotted class path: {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"cannot import {module_name} (for {path}): {err}") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise UserError(f"{module_name} has no class {name} (for {path})")
    return cls


def layer_classes(names: Sequence[str]) -> set[type]:
    """The set of module classes FSDP wraps (and checkpoints) as units."""
    if not names:
        raise UserError("an FSDP wrap policy needs at least one layer class")
    return {import_class(n) for n in names}


class UniformDtypeWrapPolicy(ModuleWrapPolicy):
    """Wraps every module of the given classes, then gives trainable parts their own units.

    FSDP flattens the parameters of one unit into one tensor, so a unit must hold one
    dtype. With frozen towers stored in bf16 and trainable parts in fp32 (the
    ``model.frozen_dtype`` layout), the parameters left outside the block units mix both.
    Frozen parameters stay in their parent's unit (the root holds the LLM's embeddings,
    final norm and head, which the model calls directly, outside any child's forward).
    Below a module whose remaining parameters mix dtypes, each child whose remaining
    parameters are all trainable and of one dtype becomes a unit; children that still mix
    are split the same way. A unit that would still mix dtypes (frozen parameters of two
    dtypes, or a module holding both kinds directly) is a :class:`UserError`.
    """

    def __init__(self, names: Sequence[str]):
        super().__init__(layer_classes(names))

    def _run_policy(
        self, root_module: nn.Module, ignored_modules: set[nn.Module], root_kwargs: dict
    ) -> dict[nn.Module, dict]:
        targets = super()._run_policy(root_module, ignored_modules, root_kwargs)
        memo: dict[nn.Module, tuple[set, bool]] = {}

        def rest(m: nn.Module) -> tuple[set[torch.dtype], bool]:
            """Dtypes of ``m``'s parameters outside units, and whether all are trainable."""
            if m not in memo:
                own = list(m.parameters(recurse=False))
                kinds, trainable = {p.dtype for p in own}, all(p.requires_grad for p in own)
                for child in _loose_children(m, targets, ignored_modules):
                    k, t = rest(child)
                    kinds, trainable = kinds | k, trainable and t
                memo[m] = (kinds, trainable)
            return memo[m]

        def split(m: nn.Module) -> None:
            for child in list(_loose_children(m, targets, ignored_modules)):
                kinds, trainable = rest(child)
                if len(kinds) == 1 and trainable:
                    targets[child] = dict(root_kwargs)
                elif len(kinds) > 1:
                    split(child)
            memo.clear()
            kinds, _ = rest(m)
            if len(kinds) > 1:
                names = [n for n, p in m.named_parameters() if p.dtype != max(kinds, key=str)]
                raise UserError(
                    f"FSDP: a unit around {type(m).__name__} would mix dtypes "
                    f"{sorted(map(str, kinds))} (e.g. {names[:3]}); keep frozen parameters in "
                    "one dtype (model.frozen_dtype) and trainable ones in another"
                )

        if len(rest(root_module)[0]) > 1:
            split(root_module)
        return targets


def _loose_children(m: nn.Module, targets: dict, ignored: set[nn.Module]) -> Iterable[nn.Module]:
    """Children of ``m`` that are not units themselves (their parameters are ``m``'s unit's)."""
    return (c for c in m.children() if c not in targets and c not in ignored)


def recompute_once(strategy, model: nn.Module) -> bool:
    """Turn off the LLM's own gradient checkpointing where the strategy checkpoints blocks.

    FSDP's activation checkpointing wraps each decoder layer; with ``transformers``'
    gradient checkpointing also on, backward would run every layer's forward twice more
    instead of once. Returns whether it was turned off.
    """
    llm = getattr(model, "llm", None)
    if not getattr(strategy, "_activation_checkpointing_kwargs", None):
        return False
    new = hasattr(llm, "activation_checkpointing_disable")  # transformers >= 5 names
    if not getattr(llm, "is_activation_checkpointing" if new else "is_gradient_checkpointing", 0):
        return False
    (llm.activation_checkpointing_disable if new else llm.gradient_checkpointing_disable)()
    return True
