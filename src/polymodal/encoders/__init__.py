"""Feature extraction: encoders for text, images and audio, registered by name; the
per-column towers they form (:mod:`polymodal.encoders.towers`); the feature cache. The
projection to a shared size is the next stage, :mod:`polymodal.representation`."""

from polymodal.encoders.base import Encoded, ModalityEncoder, masked_mean
from polymodal.encoders.cache import CachedEncoder, CachedFeatures, FeatureCache
from polymodal.encoders.embed import EmbedResult, embed_manifest
from polymodal.encoders.registry import ENCODERS, EncoderInfo, build_encoder, list_encoders

__all__ = ["ENCODERS", "CachedEncoder", "CachedFeatures", "EmbedResult", "Encoded",
           "EncoderInfo", "FeatureCache", "ModalityEncoder", "build_encoder",
           "embed_manifest", "list_encoders", "masked_mean"]
