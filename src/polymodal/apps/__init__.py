"""Applications built on the public API: multimodal recommendation (:mod:`.recommend`);
see docs/recommend.md. (The audio-visual and image + text studies are benchmarks:
``benchmarks/studies/`` in the repository, docs/applications.md.)"""

from polymodal.apps.recommend import Recommender, fuse_item_embeddings, simulate_users

__all__ = ["Recommender", "fuse_item_embeddings", "simulate_users"]
