"""Presets, sweeps, overrides, errors and round trips of ``bregman.train.config``."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bregman.train.config import (
    RUNTIME,
    Config,
    ConfigError,
    Experiment,
    Runtime,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    list_presets,
    load_config,
    save_config,
)
from bregman.train.sweep import list_sweeps, load_sweep, slug
from bregman.train.tasks import DATASET_TASKS, task_for
from bregman.train.validate import CHOICES, MODEL_DATASETS, RANGES

PRESETS = ["mnist-mlp", "fmnist-cnn", "cifar10-resnet18", "mnist-denoise"]
SWEEPS = ["fig2", "fig3", "table1", "table2", "table3"]


@pytest.fixture
def cfg() -> Config:
    return load_config("mnist-mlp")


def test_shipped_files_listed():
    assert set(PRESETS) <= set(list_presets())
    assert set(SWEEPS) <= set(list_sweeps())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert cfg.dataset in MODEL_DATASETS[cfg.model]


def test_preset_values():
    mlp = load_config("mnist-mlp")
    assert (mlp.model, mlp.optimizer, mlp.lr, mlp.lam, mlp.init_density) == ("mlp", "linbreg", 0.1, 0.1, 0.01)
    assert mlp.weight_scale is None
    cnn = load_config("fmnist-cnn")
    assert (cnn.reg_conv, cnn.reg_linear, cnn.lam, cnn.lam_conv) == ("kernels", "l1", 0.5, 0.5)
    res = load_config("cifar10-resnet18")
    assert (res.optimizer, res.lr, res.reg_conv, res.eval_batch_size) == ("adabreg", 1e-3, "kernels", 100)
    den = load_config("mnist-denoise")
    assert (den.reg_linear, den.init_linear, den.lam, task_for(den.dataset).name) == ("rows", "rows", 0.07, "denoise")


def test_model_choices_match_registry():
    from bregman.models import MODELS

    assert set(CHOICES["model"]) == set(MODELS) == set(MODEL_DATASETS)
    assert {d for datasets in MODEL_DATASETS.values() for d in datasets} == set(DATASET_TASKS)


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_loads_and_expands(name):
    sweep = load_sweep(name)
    assert sweep.runs and sweep.seeds
    expanded = sweep.expand()
    assert len(expanded) == len(sweep.runs) * len(sweep.seeds)
    assert len({(c.name, c.seed) for _, _, c in expanded}) == len(expanded)
    for label, seed, cfg in expanded:
        assert isinstance(cfg, Config) and cfg.seed == seed and slug(label) in cfg.name


def test_fig2_rows():
    runs = {r.label: r.overrides for r in load_sweep("fig2").runs}
    base = load_config("mnist-mlp")
    sgd = apply_overrides(base, runs["SGD"])
    assert (sgd.optimizer, sgd.init_density, sgd.reg_linear) == ("sgd", 0.01, "none")
    prox = apply_overrides(base, runs["ProxSGD λ=1e-4"])
    assert (prox.optimizer, prox.lam, prox.init_density) == ("proxsgd", 1e-4, 0.01)


def test_table3_common_applies_to_every_run():
    sweep = load_sweep("table3")
    for _, _, cfg in sweep.expand():
        assert cfg.reg_conv in ("l1", "none") and cfg.lam_conv is None


@pytest.mark.parametrize(
    ("item", "field", "value"),
    [
        ("epochs=5", "epochs", 5),
        ("lr=1e-3", "lr", 1e-3),
        ("lr=1", "lr", 1.0),
        ("compile=true", "compile", True),
        ("compile=No", "compile", False),
        ("channels_last=0", "channels_last", False),
        ("foreach=yes", "foreach", True),
        ("lam_conv=0.3", "lam_conv", 0.3),
        ("lam_conv=none", "lam_conv", None),
        ("threads=null", "threads", None),
        ("threads=2", "threads", 2),
        ("betas=0.8,0.99", "betas", (0.8, 0.99)),
        ("betas=(0.5, 0.9)", "betas", (0.5, 0.9)),
        ("data_root=some/dir/x=y", "data_root", "some/dir/x=y"),
        ("device=cuda:1", "device", "cuda:1"),
        ("name = my run", "name", "my run"),
        ("seed=-3", "seed", -3),
    ],
)
def test_override_types(cfg, item, field, value):
    new = apply_overrides(cfg, [item])
    assert getattr(new, field) == value and type(getattr(new, field)) is type(value)


def test_overrides_from_mapping_and_immutability(cfg):
    new = apply_overrides(cfg, {"lr": 1, "betas": [0.8, 0.9], "weight_scale": "none"})
    assert (new.lr, new.betas, new.weight_scale) == (1.0, (0.8, 0.9), None)
    assert cfg.lr == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["lamda=1"], "unknown config key 'lamda'; did you mean 'lam'?"),
        (["epoch=3"], "did you mean 'epochs'?"),
        (["zzzzzz=3"], "unknown config key 'zzzzzz'; valid keys: name, model"),
        (["lr"], "not of the form key=value"),
        (["lr=abc"], "invalid value for 'lr': 'abc' (expected a float)"),
        (["lr=nan"], "invalid value for 'lr': nan (expected a finite float)"),
        (["epochs=1.5"], "invalid value for 'epochs': '1.5' (expected an int)"),
        (["epochs=none"], "(expected an int)"),
        (["compile=maybe"], "invalid value for 'compile': 'maybe' (expected a bool"),
        (["betas=0.9"], "invalid value for 'betas': '0.9' (expected 2 comma-separated floats)"),
        (["weight_scale=big"], "(expected a float or none)"),
        (["optimizer=linbrg"], "expected one of: sgd, adam, adamw, linbreg, adabreg, proxsgd); did you mean 'linbreg'?"),
        (["reg_conv=rows"], "invalid value for 'reg_conv': 'rows'"),
        (["device=gpu"], "invalid value for 'device'"),
        (["epochs=0"], "invalid value for 'epochs': 0 (must be ≥ 1)"),
        (["lr=0"], "invalid value for 'lr': 0.0 (must be > 0.0)"),
        (["init_density=1.5"], "must be in [0.0, 1.0]"),
        (["momentum=1"], "must be in [0.0, 1.0)"),
        (["betas=0.9,1.0"], "'betas'"),
        (["lam=-0.1"], "must be ≥ 0.0"),
        (["prune_target=1"], "must be in (0.0, 1.0)"),
        (["threshold_target=0"], "must be in (0.0, 1.0]"),
        (["name= "], "must not be empty"),
        (["model=resnet18"], "does not fit dataset 'mnist'"),
        (["optimizer=adam", "momentum=0.9"], "has no effect with optimizer 'adam'"),
        (["penalty=loss"], "penalty='loss' needs optimizer sgd or adam"),
        (["init_density=0"], "needs an explicit weight_scale"),
    ],
)
def test_override_errors(cfg, items, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, items)
    assert message in str(err.value)


def test_valid_edge_overrides(cfg):
    assert apply_overrides(cfg, ["init_density=0", "weight_scale=1"]).init_density == 0.0
    assert apply_overrides(cfg, ["optimizer=sgd", "penalty=loss", "momentum=0.9"]).penalty == "loss"


def test_direct_construction_is_checked():
    with pytest.raises(ConfigError, match="'lr'"):
        Config(name="x", model="mlp", dataset="mnist", lr="0.1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'compile'"):
        Config(name="x", model="mlp", dataset="mnist", compile=1)  # type: ignore[arg-type]
    cfg = Config(name="x", model="mlp", dataset="mnist", lr=1, betas=[0.8, 0.9])  # type: ignore[arg-type]
    assert cfg.lr == 1.0 and type(cfg.lr) is float and cfg.betas == (0.8, 0.9)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('name = "x"\nmodel = "mlp"\ndataset = "mnist"\nlamda = 0.1\n')
    with pytest.raises(ConfigError, match=r"unknown config key 'lamda' in .*exp\.toml; did you mean 'lam'\?"):
        load_config(path)


def test_bad_value_in_file_names_file(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('model = "mlp"\ndataset = "mnist"\nlr = "fast"\n')
    with pytest.raises(ConfigError, match=r"invalid value for 'lr': 'fast' \(expected a float\) in .*exp\.toml"):
        load_config(path)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'mnist-mpl'; did you mean 'mnist-mlp'"):
        load_config("mnist-mpl")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    partial = tmp_path / "partial.toml"
    partial.write_text('model = "mlp"\n')
    with pytest.raises(ConfigError, match="missing required key.*dataset"):
        load_config(partial)


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "quick.toml"
    path.write_text('model = "mlp"\ndataset = "mnist"\n')
    assert load_config(path).name == "quick"


def _odd_config() -> Config:
    return apply_overrides(
        load_config("cifar10-resnet18"),
        {
            "name": 'odd "name" \\ λ\ttab',
            "data_root": "/data/ünïcode",
            "lr": 1e-17,
            "betas": (0.5, 0.25),
            "threads": 3,
            "threshold_target": 1.0,
            "lam": 1e-300,
        },
    )


@pytest.mark.parametrize("make", [lambda: load_config("mnist-mlp"), _odd_config])
def test_toml_round_trip(tmp_path, make):
    cfg = make()
    path = save_config(cfg, tmp_path / "sub" / "config.toml")
    assert load_config(path) == cfg
    assert load_config(path).name == cfg.name


@pytest.mark.parametrize("name", PRESETS)
def test_dict_round_trip(name):
    cfg = apply_overrides(load_config(name), ["threads=2", "lam_conv=0.2"])
    d = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(d) == cfg
    assert config_to_toml(config_from_dict(d)) == config_to_toml(cfg)


def test_dict_unknown_key():
    d = config_to_dict(load_config("mnist-mlp")) | {"lamda": 1.0}
    with pytest.raises(ConfigError, match="did you mean 'lam'"):
        config_from_dict(d)


def _write_sweep(tmp_path, body: str):
    path = tmp_path / "sw.toml"
    path.write_text('base = "mnist-mlp"\nseeds = [0, 1]\n' + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[run]]\nlabel = "a"\nlamda = 1.0\n', "unknown config key 'lamda' in .*sw.toml, run 'a'; did you mean 'lam'"),
        ('[[run]]\nlabel = "a"\nlr = -1.0\n', "invalid value for 'lr'.* run 'a'"),
        ('[[run]]\nlam = 1.0\n', "needs a non-empty string 'label'"),
        ('[[run]]\nlabel = "a b"\n[[run]]\nlabel = "A-B"\n', "name the same run"),
        ('[[run]]\nlabel = "a"\nseed = 3\n', "sets 'seed'"),
        ('', "at least one"),
        ('sweeps = 1\n[[run]]\nlabel = "a"\n', "unknown sweep key 'sweeps'.*did you mean 'seeds'"),
    ],
)
def test_sweep_errors(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_write_sweep(tmp_path, body))


def test_sweep_common_and_path_base(tmp_path):
    save_config(apply_overrides(load_config("mnist-mlp"), ["epochs=7"]), tmp_path / "base.toml")
    path = tmp_path / "sw.toml"
    path.write_text('base = "base.toml"\n[common]\nlam = 0.5\n[[run]]\nlabel = "x"\n[[run]]\nlabel = "y"\nlam = 0.2\n')
    sweep = load_sweep(path)
    (_, _, x), (_, _, y) = sweep.expand()
    assert (x.epochs, x.lam, y.lam, sweep.seeds) == (7, 0.5, 0.2, (0,))
    assert load_sweep(path).expand() == sweep.expand()


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1).filter(str.strip),
    lr=st.floats(min_value=1e-300, max_value=1e300),
    lam=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e10)),
    betas=st.tuples(st.floats(0.0, 0.999999), st.floats(0.0, 0.999999)),
    seed=st.integers(-(2**63), 2**63 - 1),
)
def test_toml_round_trip_property(tmp_path_factory, name, lr, lam, betas, seed):
    cfg = apply_overrides(
        load_config("mnist-mlp"), {"name": name, "lr": lr, "lam_conv": lam, "betas": betas, "seed": seed}
    )
    path = save_config(cfg, tmp_path_factory.mktemp("cfg") / "c.toml")
    assert load_config(path) == cfg


def test_single_string_override(cfg):
    assert apply_overrides(cfg, "lr=0.5").lr == 0.5


def test_runtime_settings_are_config_fields_and_change_no_result_key():
    """Every runtime setting (never checked on resume) is a Config field, and none of them is one
    that decides what is trained (model, data, optimizer, regularizer, schedule, seed)."""
    fields = {f.name for f in dataclasses.fields(Config)}
    assert RUNTIME <= fields
    assert RUNTIME == {f.name for f in dataclasses.fields(Runtime)}
    assert fields == RUNTIME | {f.name for f in dataclasses.fields(Experiment)}
    assert not RUNTIME & {"model", "dataset", "optimizer", "lr", "lam", "reg_linear", "reg_conv", "seed", "batch_size",
                          "amp", "epochs", "split", "init_density"}


@pytest.mark.parametrize("key", sorted(RANGES))
def test_range_bounds_follow_their_brackets(cfg, key):
    """Each finite end of a field's interval is accepted where its bracket is closed and refused,
    quoting the interval, where it is open."""
    lo, hi, brackets = RANGES[key]
    base = apply_overrides(cfg, ["weight_scale=1"])  # init_density=0 needs an explicit weight_scale
    for bound, closed in ((lo, brackets[0] == "["), (hi, brackets[1] == "]")):
        if bound == float("inf"):
            continue
        value = (bound, bound) if key == "betas" else bound
        if closed:
            assert getattr(apply_overrides(base, {key: value}), key) == value
        else:
            with pytest.raises(ConfigError, match=rf"invalid value for '{key}'.*\(must be"):
                apply_overrides(base, {key: value})
