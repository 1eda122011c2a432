"""The ``auto`` fit, ``Predictor``'s default preset: several recipes tried within the
time limit (handcrafted and pretrained features with linear, MLP and gradient-boosted
heads; the fusion network), scored on the validation rows, the best or a weighted
ensemble of them kept, and a leaderboard of every one.

    features.py    feature sets: each column through fixed extractors, cached
    heads.py       the scikit-learn heads per task
    candidates.py  the recipes by name (CANDIDATES), the default list
    ensemble.py    greedy ensemble weights on the validation rows
    model.py       AutoModel: the candidates and the kept mix; prediction
    search.py      fit_auto: the search itself
    saved.py       save / load of what was kept (skops + a Predictor folder)
"""

from polymodal.auto.candidates import CANDIDATES, DEFAULT_CANDIDATES, candidate_specs
from polymodal.auto.model import AutoModel, CandidateSpec, Trial
from polymodal.auto.search import fit_auto

__all__ = ["CANDIDATES", "DEFAULT_CANDIDATES", "AutoModel", "CandidateSpec", "Trial",
           "candidate_specs", "fit_auto"]
