"""polymodal: multimodal learning for text, images and audio.

From a table whose rows point at images, audio and text to fused models and
applications: feature extraction -> shared representation -> fusion -> pretraining ->
finetuning -> task output.
"""

from polymodal.data import DataError, Manifest, MediaError, MultimodalDataset, validate

__version__ = "0.1.0"

__all__ = ["DataError", "Manifest", "MediaError", "MultimodalDataset", "__version__",
           "validate"]
