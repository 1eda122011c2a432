"""Fusion: combine the modalities' shared representations into one.

Methods by name: ``concat`` (early), ``late`` (decision-level), ``gated`` (learned
per-row modality weights), ``attention`` (cross-modal transformer), ``tensor`` (Tensor
Fusion Network), ``lowrank`` (Low-rank Multimodal Fusion), ``relation`` (Relation
Network over one column's objects, conditioned on the others: visual QA).
"""

from polymodal.fusion import methods
from polymodal.fusion.base import (
    FUSIONS,
    Fusion,
    build_fusion,
    fusion_class,
    modality_dropout,
    register_fusion,
)
from polymodal.fusion.methods import (
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    RelationFusion,
    TensorFusion,
)

__all__ = ["FUSIONS", "AttentionFusion", "ConcatFusion", "Fusion", "GatedFusion",
           "LateFusion", "LowRankFusion", "RelationFusion", "TensorFusion", "build_fusion",
           "fusion_class", "methods", "modality_dropout", "register_fusion"]
