"""What a fitted Predictor says about itself: its training log, the modality report
(each column removed, each alone), the gate weights of a gated fusion, and the plots
(learning curves, confusion matrix, modality contribution)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


class PredictorReports:
    """The reports of :class:`~polymodal.predictor.Predictor` (a mixin: it reads the
    fitted model, task and columns)."""

    def training_log(self: Any) -> pd.DataFrame | None:
        """The metrics of every epoch of the fit (its run's log, or the copy saved with
        the model), or None."""
        from polymodal.plots import read_metrics

        network = self.auto_.network() if self.is_auto else None
        if network is not None:  # an auto fit's curves are its network's
            return network.training_log()
        run = getattr(self, "run_dir_", None)
        if run is not None and (Path(run) / "logs").is_dir():
            return read_metrics(Path(run) / "logs" / "metrics.csv")
        saved = getattr(self, "saved_log_", None)
        return pd.read_csv(saved) if saved is not None and Path(saved).is_file() else None

    def modality_report(self: Any, data: Any) -> pd.DataFrame:
        """The task's main metric with each column removed and with each column alone,
        and the mean gated weights where the fusion is gated."""
        metric = self.task_.main_metric
        rows = [{"setting": "all columns", metric: self.evaluate(data)[metric]}]
        for c in self.columns_:
            rows.append({"setting": f"without {c}",
                         metric: self.evaluate(data, drop=[c])[metric]})
            if len(self.columns_) > 1:
                others = [o for o in self.columns_ if o != c]
                rows.append({"setting": f"{c} alone",
                             metric: self.evaluate(data, drop=others)[metric]})
        report = pd.DataFrame(rows)
        weights = self.gated_weights(data)
        if weights is not None:
            for c, w in weights.items():
                report.loc[len(report)] = {"setting": f"gate weight of {c}", metric: w}
        return report

    @torch.no_grad()
    def gated_weights(self: Any, data: Any) -> dict[str, float] | None:
        """Mean per-column gate weights of a gated fusion over ``data`` (else None)."""
        from polymodal.fusion import GatedFusion

        fusion = getattr(self.model_, "fusion", None)  # an auto fit's mix has none
        if not isinstance(fusion, GatedFusion):
            return None
        m = self._read_for_inference(data)
        total = torch.zeros(len(self.columns_))
        n = 0
        for batch in self._loader(m, shuffle=False):
            self.model_.embed(batch)
            assert fusion.last_weights is not None
            total += fusion.last_weights.sum(dim=0).cpu()
            n += len(batch)
        return {c: float(total[i] / max(n, 1)) for i, c in enumerate(fusion.columns)}

    def plot(self: Any, data: Any, out_dir: str | os.PathLike[str] | None = None
             ) -> list[Path]:
        """Write learning curves, the confusion matrix (single-label classification)
        and the modality contribution as PNG files (default: the run folder); returns
        their paths. The learning curves come from the run's log, or from the
        ``training_log.csv`` saved with the model."""
        from polymodal import plots

        self._check_fitted()
        folder = Path(out_dir or getattr(self, "run_dir_", "."))
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        chance = getattr(self, "chance_", None)
        log = self.training_log()
        if log is not None:
            curve = plots.learning_curves(log, folder / "learning_curves.png", chance=chance,
                                          title=f"learning curves: {self.label}")
            if curve is not None:
                written.append(curve)
        if self.task_.single_label:
            m = self._read_for_inference(data)
            keep, y = self._labelled_targets(m)
            proba = self.predict_proba(m).to_numpy()[keep]
            written.append(plots.confusion_matrix(np.asarray(y), proba.argmax(axis=1),
                                                  [str(c) for c in self.classes_],
                                                  folder / "confusion_matrix.png",
                                                  title=f"confusion matrix: {self.label}"))
        report = self.modality_report(data)
        written.append(plots.modality_contribution(
            report, folder / "modality_contribution.png",
            chance=chance if "accuracy" in report.columns else None))
        return written
