"""The generative half of the pipeline: captions written from pictures
(:class:`Captioner`) and pictures generated to enlarge a training set
(:mod:`polymodal.generate.gan`)."""

from polymodal.generate.captioner import Captioner
from polymodal.generate.config import CaptionerConfig
from polymodal.generate.tokens import Vocabulary

__all__ = ["Captioner", "CaptionerConfig", "Vocabulary"]
