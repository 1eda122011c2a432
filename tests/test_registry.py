"""Everything found by name (fusions, encoders, presets, bundled datasets) is found in a
:class:`~polymodal.registry.Registry`: a misspelt name is one error, ``UnknownName``,
that names the nearest known name, in Python and at the command line (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.bundled import DATASETS, get_spec
from polymodal.data.bundled.registry import register_dataset
from polymodal.data.errors import PolymodalError
from polymodal.encoders import ENCODERS, build_encoder
from polymodal.encoders.registry import register_encoder
from polymodal.fusion import FUSIONS, build_fusion, fusion_class, register_fusion
from polymodal.presets import PRESETS, register_preset, resolve_preset
from polymodal.registry import Registry, UnknownName

MISSPELT = [  # (lookup, misspelt name, the nearest known one)
    (fusion_class, "contact", "concat"),
    (build_encoder, "minilim", "minilm"),
    (resolve_preset, "fats", "fast"),
    (get_spec, "av-digit", "av-digits"),
]


@pytest.mark.parametrize(("lookup", "name", "nearest"), MISSPELT,
                         ids=[m[1] for m in MISSPELT])
def test_a_misspelt_name_is_unknown_and_the_nearest_is_named(lookup, name, nearest):
    with pytest.raises(UnknownName, match=f"did you mean '{nearest}'") as caught:
        lookup(name)
    error = caught.value
    assert isinstance(error, PolymodalError | KeyError | ValueError)
    assert error.name == name and nearest in error.known
    assert f"unknown {error.kind} '{name}'" in str(error)


def test_the_registries_are_the_four_kinds():
    for registry, kind, known in ((FUSIONS, "fusion", "concat"), (ENCODERS, "encoder", "cnn"),
                                  (PRESETS, "preset", "tiny"),
                                  (DATASETS, "dataset", "av-digits")):
        assert isinstance(registry, Registry) and registry.kind == kind
        assert known in registry and registry[known] is registry.get(known)
        assert list(registry) == sorted(registry) == registry.names()
        assert dict(registry.items())[known] is registry.get(known)
        assert len(registry) == len(registry.values())


def test_the_old_error_types_still_catch_an_unknown_name():
    with pytest.raises(KeyError, match="known fusions"):  # fusion_class raised KeyError
        build_fusion("sum", ["a", "b"], 8)
    with pytest.raises(ValueError, match="unknown preset"):  # resolve_preset: ValueError
        resolve_preset("huge")
    with pytest.raises(KeyError, match="known encoders"):
        build_encoder("nope")
    with pytest.raises(KeyError, match="known datasets"):
        get_spec("imagenet")


def test_a_name_registered_twice_is_refused():
    # the registries are filled first: a builtin name is taken whichever module loads
    for registry in (FUSIONS, ENCODERS, PRESETS, DATASETS):
        registry.names()
    before = {r.kind: r.items() for r in (FUSIONS, ENCODERS, PRESETS, DATASETS)}

    class Again(FUSIONS["concat"]):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(ValueError, match="fusion 'concat' is registered twice"):
        register_fusion("concat")(Again)
    assert FUSIONS["concat"] is not Again
    with pytest.raises(ValueError, match="encoder 'cnn' is registered twice"):
        register_encoder("cnn", modality="image", description="another")(lambda: None)
    with pytest.raises(ValueError, match="preset 'fast' is registered twice"):
        register_preset("fast")(lambda: PRESETS["tiny"]())
    with pytest.raises(ValueError, match="dataset 'av-digits' is registered twice"):
        register_dataset("av-digits", description="x", source="x", licence="x")(
            lambda out, **_: None)
    assert {r.kind: r.items() for r in (FUSIONS, ENCODERS, PRESETS, DATASETS)} == before

    fresh: Registry[int] = Registry("thing")
    fresh.register("one")(1)
    with pytest.raises(ValueError, match="thing 'one' is registered twice"):
        fresh.add("one", 2)
    assert fresh["one"] == 1


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    """Six rows of words and a two-class label: nothing to decode, nothing to download."""
    path = tmp_path / "words.csv"
    pd.DataFrame({"text": ["red apple", "green leaf", "red rose", "green frog",
                           "red brick", "green moss"],
                  "y": ["red", "green"] * 3}).to_csv(path, index=False)
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert not isinstance(result.exception, UnknownName | AssertionError), result.output
    return result.exit_code, " ".join(result.output.split())  # rich may wrap a long line


def test_cli_train_with_a_misspelt_fusion_exits_2_naming_the_nearest(tiny_manifest, tmp_path):
    code, output = _invoke("train", "--train", str(tiny_manifest), "--label", "y",
                           "--preset", "tiny", "--fusion", "contact",
                           "--out", str(tmp_path / "model"))
    assert code == 2, output
    assert "unknown fusion 'contact'; did you mean 'concat'?" in output
    assert not list((tmp_path / "model").rglob("*.ckpt"))  # refused before training


def test_cli_train_with_a_misspelt_preset_exits_2_naming_the_nearest(tiny_manifest, tmp_path):
    code, output = _invoke("train", "--train", str(tiny_manifest), "--label", "y",
                           "--preset", "fats", "--out", str(tmp_path / "model"))
    assert code == 2, output
    assert "unknown preset 'fats'; did you mean 'fast'?" in output


def test_cli_embed_with_a_misspelt_encoder_exits_2_naming_the_nearest(tiny_manifest, tmp_path):
    code, output = _invoke("embed", str(tiny_manifest), "--encoder", "minilim",
                           "--out", str(tmp_path / "e.parquet"))
    assert code == 2, output
    assert "unknown encoder 'minilim'; did you mean 'minilm'?" in output
    assert not (tmp_path / "e.parquet").exists()


def test_cli_datasets_make_with_a_misspelt_name_exits_2_naming_the_nearest(tmp_path):
    code, output = _invoke("datasets", "make", "av-digit", "--out", str(tmp_path / "d"))
    assert code == 2, output
    assert "unknown dataset 'av-digit'; did you mean 'av-digits'?" in output
    assert not (tmp_path / "d").exists()


def test_every_builtin_module_imports_first_on_its_own():
    # `import polymodal.encoders.audio` as a program's first import: its decorators run
    # before the other encoder modules load, which once imported names from the
    # half-run module (ImportError: partially initialized module)
    import subprocess
    import sys

    from polymodal.data.bundled.registry import DATASETS
    from polymodal.encoders.registry import ENCODERS
    from polymodal.fusion.base import FUSIONS

    counts = {"ENCODERS": len(ENCODERS), "FUSIONS": len(FUSIONS), "DATASETS": len(DATASETS)}
    check = ("from polymodal.encoders.registry import ENCODERS; "
             "from polymodal.fusion.base import FUSIONS; "
             "from polymodal.data.bundled.registry import DATASETS; "
             "print(len(ENCODERS), len(FUSIONS), len(DATASETS))")
    modules = [*ENCODERS._modules, *FUSIONS._modules, *DATASETS._modules]
    runs = {m: subprocess.Popen([sys.executable, "-c", f"import {m}; {check}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for m in modules}
    for module, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, f"import {module} first: {err[-800:]}"
        assert out.split() == [str(counts[k]) for k in ("ENCODERS", "FUSIONS", "DATASETS")]
