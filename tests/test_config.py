"""Settings as data: the config dataclasses mirror the constructors, round-trip through
YAML, take dotted overrides, refuse unknown keys with the nearest name, and are what a
saved model keeps."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from polymodal.config import (
    ConfigError,
    PredictorConfig,
    PretrainerConfig,
    RunConfig,
    load_config,
    parse_overrides,
    write_yaml,
)
from polymodal.data.bundled import make_dataset
from polymodal.predictor import Predictor
from polymodal.pretraining import Pretrainer


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


@pytest.mark.parametrize("estimator", [Predictor, Pretrainer])
def test_each_config_mirrors_its_constructor(estimator):
    """Same names, same order, same defaults (empty containers for None)."""
    params = list(inspect.signature(estimator).parameters.values())
    fields = dataclasses.fields(estimator.config_class)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else p.empty)
        assert default == p.default or (p.default in (None, ()) and default in ({}, [])), \
            (p.name, p.default, default)


def test_yaml_round_trip_and_dotted_overrides(tmp_path):
    run = load_config({"label": "y", "train": "rows.csv", "encoders": {"image": "cnn"}},
                      ["fusion=gated", "fusion_options.heads=2", "roles.sample=id",
                       "encoders.text=minilm", "modalities=[image, text]", "dim=64"])
    assert isinstance(run.estimator, PredictorConfig)
    assert run.estimator.fusion == "gated" and run.estimator.dim == 64
    assert run.estimator.fusion_options == {"heads": 2}
    assert run.estimator.roles == {"sample": "id"}
    assert run.estimator.encoders == {"image": "cnn", "text": "minilm"}
    assert run.estimator.modalities == ["image", "text"]
    assert run.fit.train == "rows.csv"
    path = write_yaml(run, tmp_path / "train.yaml")
    again = load_config(path)
    assert again == run
    assert yaml.safe_load(path.read_text())["fusion_options"] == {"heads": 2}


def test_unknown_and_missing_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting 'fusoin'; did you mean 'fusion'"):
        load_config({"label": "y", "fusoin": "gated"})
    with pytest.raises(ConfigError, match="needs 'label'"):
        load_config({"train": "rows.csv"})
    with pytest.raises(ConfigError, match="init_from"):  # a Predictor's, not a Pretrainer's
        load_config({"init_from": "x"}, kind=PretrainerConfig)
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_overrides(["fusion"])
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config({"label": "y", "fusion": "gated"}, ["fusion.heads=2"])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a config is a mapping"):
        load_config(tmp_path / "list.yaml")


def test_from_config_and_config_are_one_settings_object(tmp_path):
    p = Predictor.from_config({"label": "y", "fusion": "late"}, dim=32,
                              **{"fusion_options.rank": 4})
    assert (p.label, p.fusion, p.dim, p.fusion_options) == ("y", "late", 32, {"rank": 4})
    assert p.config() == PredictorConfig(label="y", fusion="late", dim=32,
                                         fusion_options={"rank": 4})
    (tmp_path / "pre.yaml").write_text("preset: tiny\nanchor: image\nfreeze: [text]\n")
    pre = Pretrainer.from_config(tmp_path / "pre.yaml")
    assert (pre.preset, pre.anchor, pre.freeze) == ("tiny", "image", ["text"])
    assert Pretrainer.from_config(pre.config()).config() == pre.config()
    with pytest.raises(ConfigError, match="did you mean 'anchor'"):
        Pretrainer.from_config({"anchr": "image"})
    assert isinstance(RunConfig(p.config(), load_config({"label": "y"}).fit).to_dict(), dict)


def test_a_saved_model_keeps_its_settings_and_a_newer_format_is_refused(tmp_path, digits):
    p = Predictor(label="label", preset="tiny", fusion="concat", max_epochs=1, dropout=0.2,
                  path=tmp_path / "run", modalities=["image"]).fit(digits, progress=False)
    folder = p.save(tmp_path / "model")
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["polymodal"] == 2 and saved["kind"] == "predictor"
    assert saved["settings"]["dropout"] == 0.2 and saved["settings"]["fusion"] == "concat"
    assert saved["fitted"]["columns"] == ["image"]
    loaded = Predictor.load(folder)
    assert loaded.config() == dataclasses.replace(p.config(), path=None)  # this run's folder
    # a model from a newer polymodal names the version it needs
    saved.update({"polymodal": 3, "saved_by": "9.0.0"})
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ValueError, match=r"format 3.*install polymodal>=9.0.0"):
        Predictor.load(folder)
    # ... and so does one in today's format with a tower this version does not have
    saved["polymodal"] = 2
    saved["fitted"]["encoders"]["image"]["name"] = "tower-of-9"
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ValueError, match=r"encoder 'tower-of-9'.*install polymodal>=9.0.0"):
        Predictor.load(folder)
    with pytest.raises(ValueError, match="not a saved Pretrainer"):
        Pretrainer.load(p.save(tmp_path / "again"))
