"""polymodal: multimodal learning for text, images and audio.

From a table whose rows point at images, audio and text to fused models and
applications: feature extraction -> shared representation -> fusion -> pretraining ->
finetuning -> task output.
"""

from importlib import import_module

#: names load on first use: ``import polymodal`` costs nothing until one is needed
#: (the command line starts without pandas or torch)
_WHERE = {"DataError": "polymodal.data.errors", "MediaError": "polymodal.data.errors",
          "Manifest": "polymodal.data.manifest", "validate": "polymodal.data.validation",
          "MultimodalDataset": "polymodal.data.dataset", "Predictor": "polymodal.predictor"}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")


__version__ = "0.4.0"

__all__ = ["DataError", "Manifest", "MediaError", "MultimodalDataset", "Predictor",
           "__version__", "validate"]
