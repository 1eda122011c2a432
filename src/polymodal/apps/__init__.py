"""Applications built on the public API: multimodal recommendation (:mod:`.recommend`),
audio-visual recognition against audio SNR (:mod:`.av_snr`) and image + text recognition
(:mod:`.image_text`); see docs/applications.md."""

from polymodal.apps.recommend import Recommender, fuse_item_embeddings, simulate_users

__all__ = ["Recommender", "fuse_item_embeddings", "simulate_users"]
