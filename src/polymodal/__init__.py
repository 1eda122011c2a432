"""polymodal: multimodal learning for text, images and audio.

From a table whose rows point at images, audio and text to fused models and
applications: feature extraction -> shared representation -> fusion -> pretraining ->
finetuning -> task output.
"""

from polymodal.data import DataError, Manifest, MediaError, validate


def __getattr__(name: str) -> object:  # these import torch: loaded on first use
    if name == "Predictor":
        from polymodal.predictor import Predictor

        return Predictor
    if name == "MultimodalDataset":
        from polymodal.data.dataset import MultimodalDataset

        return MultimodalDataset
    raise AttributeError(name)


__version__ = "0.1.0"

__all__ = ["DataError", "Manifest", "MediaError", "MultimodalDataset", "Predictor",
           "__version__", "validate"]
