"""Joining RefCOCO, COCO, LVIS and Visual Genome annotations of the same images.

``wordnet``: a reader of a local WordNet database folder (hypernym paths);
``match``: one-to-one object matching on box IoU with name compatibility (Hungarian);
``joint``: the corpus join and its per-pair report (``read_joint``).
"""
