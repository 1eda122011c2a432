"""Feature extraction and the shared representation: encoders for text, images and
audio, registered by name; the projection to a shared size; the feature cache."""

from polymodal.encoders.base import Encoded, ModalityEncoder, masked_mean
from polymodal.encoders.cache import CachedEncoder, CachedFeatures, FeatureCache
from polymodal.encoders.embed import EmbedResult, embed_manifest
from polymodal.encoders.projection import Projection
from polymodal.encoders.registry import ENCODERS, EncoderInfo, build_encoder, list_encoders

__all__ = ["ENCODERS", "CachedEncoder", "CachedFeatures", "EmbedResult", "Encoded",
           "EncoderInfo", "FeatureCache", "ModalityEncoder", "Projection", "build_encoder",
           "embed_manifest", "list_encoders", "masked_mean"]
