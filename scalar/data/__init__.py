"""Data layer: scene schema, readers, concept chains, tasks, datasets and the DataModule.

Names are imported lazily so that ``import scalar.data.scene`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Scene": "scene", "ImageInfo": "scene", "Object": "scene", "Relation": "scene",
    "Region": "scene", "RefExpr": "scene", "Category": "scene", "Corpus": "scene",
    "Skips": "scene", "AnnotationError": "scene",
    "Sample": "sample", "VisualPrompt": "sample",
    "LEVELS": "chains", "ChainLevel": "chains", "build_chain": "chains", "chain_text": "chains",
    "PROMPTS": "tasks", "TaskBuilder": "tasks", "SPATIAL_PROMPTS": "tasks_spatial",
    "merge_corpora": "merge", "select_split": "merge",
    "SampleDataset": "dataset", "MixtureSampler": "dataset",
    "Collator": "collate",
    "SceneDataModule": "datamodule",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"scalar.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'scalar.data' has no attribute {name!r}")
