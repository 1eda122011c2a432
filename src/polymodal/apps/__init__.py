"""Applications built on the public API: multimodal recommendation."""

from polymodal.apps.recommend import Recommender, fuse_item_embeddings, simulate_users

__all__ = ["Recommender", "fuse_item_embeddings", "simulate_users"]
