import pytest

from examples.kd.__main__ import build_config, parse
from examples.kd.config import PROFILES, apply_override, load_config


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_load(profile):
    cfg = load_config(profile)
    for key in ("data", "teacher", "student", "optim", "loss", "seeds", "pipeline"):
        assert key in cfg, (profile, key)


def test_paper_settings():
    cfg = load_config("paper")
    assert cfg["optim"]["lr"] == 0.1 and cfg["optim"]["lr_decay"] == 0.2 and cfg["optim"]["batch_size"] == 128
    assert [round(f * 200) for f in cfg["optim"]["milestones"]] == [60, 120, 160]
    assert cfg["loss"]["tau"] == 4.5 and cfg["loss"]["alpha"] == 0.95 and cfg["loss"]["beta"] == 3.0
    assert cfg["loss"]["sigma"] == 2.0 and cfg["student"]["epochs"] == 200 and cfg["data"]["name"] == "cifar100"


def test_overrides_and_flags():
    a = parse(["table1", "--seeds", "3,4", "--dataset", "npz", "--data-root", "x.npz", "loss.tau=2",
               "student.arch=resnet20", "--no-resume"])
    cfg = build_config(a)
    assert a.command == "table1" and cfg["seeds"] == [3, 4] and cfg["loss"]["tau"] == 2
    assert cfg["data"] == dict(cfg["data"], name="npz", root="x.npz") and cfg["resume"] is False
    assert cfg["student"]["arch"] == "resnet20" and cfg["student"]["epochs"] == load_config()["student"]["epochs"]
    assert build_config(parse(["--profile", "full"]))["run_dir"] == "runs/full"


@pytest.mark.parametrize("call, err", [
    (lambda: apply_override({}, "novalue"), "key.sub=value"),
    (lambda: apply_override({"a": 1}, "a.b=2"), "not a section"),
    (lambda: load_config("nosuchprofile"), "not found"),
    (lambda: apply_override({}, "a..b=1"), "empty key"),
])
def test_config_errors(call, err):
    with pytest.raises((ValueError, FileNotFoundError), match=err):
        call()


def test_unknown_cli_argument():
    with pytest.raises(SystemExit):
        parse(["--bogus"])


def test_schema_knows_every_model_method_and_source():
    from examples.kd import config, data, methods, models

    assert set(config.MODEL_NAMES) == set(models.MODEL_NAMES) and config.METHODS == tuple(methods.METHODS)
    assert config.SOURCES == data.SOURCES


@pytest.mark.parametrize("override, match", [
    ("data.val_fraction=0.6", "data.val_fraction must be >= 0 and <= 0.5, got 0.6"),
    ("data.val_fraction=-0.1", "data.val_fraction must be >= 0"),
    ("data.train_per_class=0", "data.train_per_class must be >= 1"),
    ("data.size=2", "data.size must be >= 4"),
    ("data.name=idxx", "did you mean idx"),
    ("analysis.sweep_seeds=[0,0]", "analysis.sweep_seeds has repeated items"),
    ("analysis.sweep_seeds=[-1]", r"analysis.sweep_seeds\[0\] must be >= 0"),
    ("threads=-1", "threads must be one of auto or an integer >= 0"),
])
def test_new_settings_are_checked(override, match):
    from examples.kd.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config("fmnist", overrides=[override])


def test_null_subset_and_size_are_for_idx_only(tmp_path):
    from examples.kd.data import load_data

    cfg = load_config("quick", overrides=["data.train_per_class=null"])  # the schema allows null ...
    with pytest.raises(ValueError, match="glyphs: data.train_per_class must be an integer"):
        load_data(cfg["data"], tmp_path)  # ... the glyph generator does not


def test_profiles_are_checked():
    from examples.kd.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'student.epoch'"):
        load_config("quick", overrides=["student.epoch=3"])
    cfg = load_config("quick", overrides=["loss.beta=1"])
    assert cfg["loss"]["beta"] == 1.0 and isinstance(cfg["loss"]["beta"], float)
