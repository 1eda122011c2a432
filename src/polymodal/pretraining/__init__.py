"""Self-supervised multimodal pretraining (contrastive InfoNCE across modality pairs),
then what the shared space gives: fine-tuning, retrieval and zero-shot."""

from polymodal.heads import EmbeddingHead
from polymodal.pretraining.model import ContrastiveModel
from polymodal.pretraining.pretrainer import Pretrainer, pretrained_encoders
from polymodal.pretraining.retrieval import chance_metrics, co_occurrence, retrieval_metrics

__all__ = ["ContrastiveModel", "EmbeddingHead", "Pretrainer", "chance_metrics",
           "co_occurrence", "pretrained_encoders", "retrieval_metrics"]
