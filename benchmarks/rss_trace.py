"""Memory over a fit from shards: ``Pretrainer.fit`` (the ``tiny`` preset, batches of
256, as ``scale-pretrain`` runs it) for at most ``--seconds``, printing a JSON line of
the process's resident memory (now and peak, MB) at each stage and every ``--every``
steps: what shows whether memory grows with the steps or the rows::

    python -m benchmarks.rss_trace ~/.cache/polymodal/bench/scale-pairs/1000000/shards
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from typing import Any

import lightning as L

_T0 = time.perf_counter()


def resident_mb() -> tuple[float, float]:
    """(resident now, peak) of this process, MB."""
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(what: str, **fields: Any) -> None:
    """One JSON line: seconds since start, the stage, resident and peak MB."""
    now, peak = resident_mb()
    print(json.dumps({"s": round(time.perf_counter() - _T0, 1), "what": what,
                      "rss_mb": round(now), "peak_mb": round(peak), **fields}), flush=True)


class Trace(L.Callback):
    """Logs the stages of a fit, and every ``every`` training steps."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_start(self, trainer: Any, module: Any) -> None:
        log("train start (vocabulary fitted, loader made)")

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any,
                           idx: int) -> None:
        if idx % self.every == 0:
            log("step", step=idx)

    def on_validation_start(self, trainer: Any, module: Any) -> None:
        log("validation start")

    def on_fit_end(self, trainer: Any, module: Any) -> None:
        log("fit end")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a shard folder (or a manifest)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args(argv)
    from polymodal.pretraining import Pretrainer

    log("imported")
    with tempfile.TemporaryDirectory() as run:
        pre = Pretrainer(preset="tiny", max_epochs=1, batch_size=256, patience=0, path=run,
                         memory_cache_mb=0, media_cache=None)
        pre.fit(args.source, progress=False, callbacks=[Trace(args.every)],
                time_limit=args.seconds)
        log("returned", steps=pre.train_steps_)


if __name__ == "__main__":
    main()
