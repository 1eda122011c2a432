"""``polymodal demo``: the whole pipeline on the bundled data with the embedded
defaults, end to end, in a few minutes on a laptop CPU.

1. make the bundled datasets av-digits and tuxpaint and validate them;
2. pretrain picture, sound and record encoders on av-digits without its labels;
3. fine-tune with 5% of the labels, from the pretraining and from scratch;
4. evaluate the fine-tuned model: metrics, the modality report and plots;
5. index tuxpaint's stamps and captions into a library;
6. answer a few sample questions from that library;
7. say how to see the same library in the browser and what to try next.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from polymodal.data import Manifest, validate
from polymodal.data.bundled import make_dataset

LABEL_SHARE = 0.05
QUESTIONS = ("a red sports car", "something to wear on your head", "a musical instrument",
             "which animal gives us milk?")
LIBRARY = "tuxpaint"


@dataclass
class DemoResult:
    """What the demo made, and its main numbers."""

    folder: Path
    datasets: dict[str, Path] = field(default_factory=dict)
    pretrained: Path | None = None
    model: Path | None = None
    plots: list[Path] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    retrieval_r10: float | None = None
    library: str = LIBRARY
    library_root: Path | None = None
    answers: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Steps:
    """Numbered steps, each timed."""

    def __init__(self, console: Console, result: DemoResult) -> None:
        self.console, self.result, self.n = console, result, 0

    @contextmanager
    def step(self, key: str, title: str, detail: str = "") -> Iterator[None]:
        self.n += 1
        self.console.rule(f"[bold]{self.n}. {title}", align="left")
        if detail:
            self.console.print(f"   [dim]{detail}[/]")
        start = time.perf_counter()
        yield
        self.result.seconds[key] = time.perf_counter() - start
        self.console.print(f"[dim]   ({self.result.seconds[key]:.0f} s)[/]")


def _quiet_libraries() -> None:
    """Lightning's and transformers' start-up chatter hides the demo's own lines."""
    import lightning.pytorch  # noqa: F401  (it sets its logger's level on import)
    import transformers

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")


def run_demo(folder: str | Path, *, console: Console | None = None, quick: bool = False,
             library_root: str | Path | None = None,
             model_root: str | Path | None = None) -> DemoResult:
    """Run the pipeline; write everything under ``folder`` except the library (the
    default library home, or ``library_root``, so that ``polymodal serve --library
    tuxpaint`` finds it) and the builtin model (``model_root``, default the model cache).

    ``quick`` runs every step on tiny data with one epoch (for tests)."""
    from polymodal.library import Library
    from polymodal.library.builtin import builtin_model
    from polymodal.library.folders import library_home
    from polymodal.predictor import Predictor
    from polymodal.pretraining import Pretrainer

    console = console or Console()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = DemoResult(folder=folder)
    steps = _Steps(console, result)
    _quiet_libraries()
    limit = 3 if quick else None
    say = console.print
    started = time.perf_counter()

    with steps.step("datasets", "datasets", "the bundled datasets, made here from Debian packages"):
        for name, what in (("av-digits", "handwritten digits, spoken digits and short "
                                         "text records, some cells empty"),
                           ("tuxpaint", "Tux Paint's stamp pictures with their captions")):
            path = make_dataset(name, folder / (name + ("-quick" if quick else "")),
                                limit=limit, show_progress=not quick)
            result.datasets[name] = path
            m = Manifest.read(path)
            report = validate(m, show_progress=not quick)
            verdict = "every row decodes" if report.ok else \
                f"[red]{len(report.bad_rows)} bad rows[/]"
            say(f"   {name}: {len(m):,} rows ({what}); columns "
                f"{', '.join(f'{c.name}={c.role.value}' for c in m.schema.columns.values())}"
                f"; {verdict}")
    digits = Manifest.read(result.datasets["av-digits"], label="label")
    train, val, test = digits.split("train"), digits.split("val"), digits.split("test")

    with steps.step("pretrain", "pretraining", "av-digits without its labels: each row's "
                    "picture, sound and record pulled together (contrastive)"):
        pre = Pretrainer(preset="fast", seed=0, max_epochs=1 if quick else 10,
                         path=folder / "runs" / "pretrain")
        pre.fit(train, val, progress=not quick)
        result.pretrained = pre.save(folder / "av-digits-pretrained")
        table = pre.evaluate_retrieval(test, directions=[("audio", "image")])
        result.retrieval_r10 = float(table["R@10"].iloc[0])
        say(f"   {pre.pairs_seen_:,} pairs seen in {pre.fit_seconds_:.0f} s; a spoken digit "
            f"finds its own picture among {len(test):,} in the top 10 for "
            f"{result.retrieval_r10:.0%} of the test rows (chance "
            f"{min(1.0, 10 / max(1, len(test))):.1%}) -> {result.pretrained}")

    few_train = train.stratified_subset("label", LABEL_SHARE)
    few_val = val.stratified_subset("label", LABEL_SHARE)
    epochs = 1 if quick else 40
    with steps.step("finetune", "fine-tuning with few labels",
                    f"{LABEL_SHARE:.0%} of the labels ({len(few_train)} rows), from the "
                    "pretraining and from scratch"):
        models: dict[str, Predictor] = {}
        for init in ("scratch", "pretrained"):
            p = Predictor(label="label", preset="fast", fusion="concat", seed=0,
                          max_epochs=epochs, path=folder / "runs" / f"finetune-{init}")
            p.fit(few_train, few_val, progress=False,
                  init_from=result.pretrained if init == "pretrained" else None)
            models[init] = p
            result.accuracy[init] = p.evaluate(test)["accuracy"]
            say(f"   from {init}: test accuracy {result.accuracy[init]:.3f}")
        gain = result.accuracy["pretrained"] - result.accuracy["scratch"]
        say(f"   the pretraining is worth {gain:+.3f} accuracy at {len(few_train)} labels")

    with steps.step("evaluate", "evaluating", "the fine-tuned model on the test split: "
                    "the modality report and plots"):
        best = models["pretrained"]
        say(best.modality_report(test).to_string(index=False,
                                                 float_format=lambda v: f"{v:.3f}"))
        result.plots = best.plot(test, folder / "plots")
        result.model = best.save(folder / "av-digits-model")
        say(f"   plots: {', '.join(str(p) for p in result.plots)}")
        say(f"   model: {result.model}")

    with steps.step("index", "a library of tuxpaint", "its pictures and captions in one "
                    "space (LanceDB on local disk)"):
        model = builtin_model("lit-tuxpaint", root=model_root, quick=quick,
                              progress=not quick)
        root = Path(library_root) if library_root else library_home()
        result.library_root = root
        name = LIBRARY + ("-quick" if quick else "")
        result.library = name
        lib = Library.create(name, model, root=root)
        report = lib.index(result.datasets["tuxpaint"], progress=not quick)
        say(f"   library {name!r} in {root}: {report.added:,} added, "
            f"{report.unchanged:,} unchanged; {len(lib):,} pictures and captions stored "
            f"(model {model})")

    with steps.step("ask", "asking the library", "answers composed from the items found"):
        for question in QUESTIONS:
            answer = lib.ask(question, k=3)
            result.answers.append(answer.answer)
            say(f"   [bold]{question}[/]\n   -> {answer.answer}")
            for hit in answer.evidence[:3]:
                say(f"      {hit.score:.3f}  {hit.item}  {hit.text or ''}")

    total = time.perf_counter() - started
    root_opt = f" --root {result.library_root}" if library_root else ""
    console.rule(f"[bold]done in {total / 60:.1f} minutes", align="left")
    lib_opt = f"--library {result.library}{root_opt}"
    say("what to try next:\n"
        f"  see the library in the browser:  polymodal serve {lib_opt}\n"
        "                                   then open http://127.0.0.1:8000 (API docs at "
        "/docs)\n"
        f"  search it from the shell:        polymodal search \"a green frog\" {lib_opt}\n"
        f"  predict with the saved model:    polymodal predict {result.model} "
        f"{result.datasets['av-digits']} --out predictions.csv\n"
        "  your own data:                   polymodal validate YOUR_MANIFEST.csv\n"
        "                                   polymodal train --train YOUR_MANIFEST.csv "
        "--label COLUMN --out model/\n"
        "  the examples and guides:         examples/, docs/ (start with docs/training.md)")
    return result
