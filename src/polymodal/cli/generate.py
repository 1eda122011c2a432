"""The generative commands: ``train-captioner``, ``caption`` (captions written from
pictures) and ``augment`` (synthetic pictures from a trained GAN)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal.cli.app import app
from polymodal.cli.common import handled, out, parse_options, parse_roles, print_table


@app.command("train-captioner")
def train_captioner_cmd(
    config: Annotated[Path | None, typer.Argument(help="a YAML config")] = None,
    train: Annotated[str | None, typer.Option(help="training manifest (pictures and "
                                                   "captions)")] = None,
    image: Annotated[str | None, typer.Option(
        help="the picture column", show_default="the only picture column")] = None,
    text: Annotated[str | None, typer.Option(help="the caption column",
                                             show_default="caption")] = None,
    question: Annotated[str | None, typer.Option(
        help="a question column: captions are written after the row's question (answers "
             "for `ask --writer`)", show_default="none")] = None,
    tuning: Annotated[str | None, typer.Option(help="tuning manifest")] = None,
    preset: Annotated[str | None, typer.Option(
        help="pretrained (frozen EfficientNet-Lite0, cached), fast or tiny",
        show_default="pretrained")] = None,
    save: Annotated[str | None, typer.Option("--out", help="where to save the model",
                                             show_default="captioner")] = None,
    role: Annotated[list[str] | None, typer.Option(
        help="override a column's role: COLUMN=ROLE (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any Captioner setting KEY=VALUE (repeatable), e.g. max_epochs=20, "
                      "layers=3, max_length=16")] = None,
) -> None:
    """Train a Captioner on rows of pictures and their captions, then save it.

    Example: polymodal train-captioner --train tuxpaint/manifest.csv --out captioner/
    """
    from polymodal.cli.training import _fit_from_config
    from polymodal.generate import Captioner

    cap, save_to = _fit_from_config(Captioner, config, {
        "train": train, "image": image, "text": text, "question": question,
        "tuning": tuning, "preset": preset,
        "save": save, "roles": parse_roles(role), **parse_options(set_)}, "captioner")
    with handled():
        cap.save(save_to)
    words = f"{len(cap.vocabulary_) - 4:,} words" if cap.vocabulary_ is not None else \
        f"decoder {cap.decoder}"
    out.print(f"trained in {cap.fit_seconds_:.0f}s ({words}); "
              f"saved to {save_to}; run folder {cap.run_dir_}")


@app.command("caption")
def caption_cmd(
    model: Annotated[str, typer.Argument(help="a saved Captioner folder")],
    images: Annotated[str, typer.Argument(
        help="a folder of pictures, a picture file, or a manifest with a picture column")],
    beam: Annotated[int, typer.Option(min=1, help="beam width (1: greedy)")] = 1,
    max_length: Annotated[int | None, typer.Option(
        min=1, help="at most this many tokens a caption", show_default="the model's")
    ] = None,
    on_error: Annotated[str, typer.Option(
        help="raise: stop at a bad picture; skip: say so in its row and go on")] = "raise",
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Write a caption for every picture; a row without one (audio only) says so.

    Example: polymodal caption captioner/ photos/ --beam 3
    """
    with handled():
        from polymodal.generate import Captioner

        result = Captioner.load(model).caption(images, beam=beam, max_length=max_length,
                                               on_error=on_error)  # type: ignore[arg-type]
    if json_out:
        print(json.dumps(result.to_dict(orient="records"), indent=2, default=str))
        return
    table = Table(title=f"captions of {images} by {model}")
    for name in ("id", "caption", "log-likelihood", "file"):
        table.add_column(name, overflow="fold")
    for r in result.itertuples():
        if r.problem:
            table.add_row(str(r.id), f"[red]{r.problem}[/]", "", str(r.file or ""))
        else:
            table.add_row(str(r.id), str(r.caption) + (" [dim](cut at the limit)[/]"
                                                       if r.cut else ""),
                          f"{r.log_likelihood:.2f}", str(r.file))
    print_table(table)


@app.command("train-gan")
def train_gan_cmd(
    train: Annotated[str, typer.Argument(help="a manifest of labelled pictures")],
    save: Annotated[str, typer.Option("--out", help="where to save the GAN")] = "gan",
    label: Annotated[str, typer.Option(help="the class column")] = "label",
    image: Annotated[str | None, typer.Option(help="the picture column")] = None,
    size: Annotated[int, typer.Option(help="picture size (a multiple of 4)")] = 28,
    steps: Annotated[int, typer.Option(min=1, help="training steps")] = 2000,
    seed: Annotated[int, typer.Option(help="the seed")] = 0,
) -> None:
    """Train a conditional GAN (spectral-norm projection discriminator, hinge loss) on
    greyscale pictures of each class, then save it.

    Example: polymodal train-gan fashion-mnist/manifest.csv --out gan/
    """
    with handled():
        from polymodal.generate.gan import ConditionalGAN

        gan = ConditionalGAN(image=image, label=label, size=size, steps=steps,
                             seed=seed).fit(train)
        gan.save(save)
    out.print(f"trained on {gan.n_train_:,} pictures of {len(gan.classes_)} classes; "
              f"saved to {save}")


@app.command("augment")
def augment_cmd(
    gan: Annotated[str, typer.Argument(help="a saved GAN folder (polymodal train-gan)")],
    save: Annotated[str, typer.Option("--out", help="folder for the pictures and "
                                                    "manifest.csv")] = "synthetic",
    per_class: Annotated[int, typer.Option(min=1, help="pictures per class")] = 100,
    classes: Annotated[list[str] | None, typer.Option(
        "--class", help="only this class (repeatable)", show_default="every class")
    ] = None,
    seed: Annotated[int, typer.Option(help="the seed")] = 0,
) -> None:
    """Write synthetic rows (PNG pictures + manifest.csv with class and caption) to mix
    into a training set; a class the GAN was not trained on is refused.

    Example: polymodal augment gan/ --out synthetic/ --per-class 200
    """
    with handled():
        from polymodal.generate.augment import write_synthetic
        from polymodal.generate.gan import ConditionalGAN

        manifest = write_synthetic(ConditionalGAN.load(gan), save, per_class, classes,
                                   seed=seed)
    out.print(f"wrote {manifest}")
