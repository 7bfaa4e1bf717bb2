"""Training configs: inheritance, overrides, validation errors that name the key, the shipped presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataset.locations import REPO_ROOT
from models.config import SCHEMA, default_config, dump_config, load_config, parse_override, resolve_config


def _write(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "base.yaml",
        {"preset": "base", "data": {"root": "somewhere", "num_points": 100}, "train": {"epochs": 10}},
    )


def test_inherit_and_override(tmp_path: Path, base: Path) -> None:
    (tmp_path / "sub").mkdir()
    child = _write(
        tmp_path / "sub" / "child.yaml",
        {"inherit_from": "../base.yaml", "preset": "child", "train": {"batch_size": 4}},
    )
    config = load_config(child, ["train.epochs=3", "train.milestones=[1, 2]", "model.atlasnet.grid_size=7"])
    assert config["preset"] == "child"
    assert config["data"] == {**default_config()["data"], "root": "somewhere", "num_points": 100}
    # Sections merge key by key: the parent's epochs and the child's batch size both survive, then --set wins.
    assert config["train"]["batch_size"] == 4
    assert config["train"]["epochs"] == 3
    assert config["train"]["milestones"] == [1, 2]
    assert config["model"]["atlasnet"]["grid_size"] == 7
    assert config["train"]["lr"] == pytest.approx(1e-3)  # default


def test_every_schema_key_resolved(base: Path) -> None:
    config = load_config(base)

    def leaves(schema: dict, node: dict, prefix: str = "") -> None:
        assert set(schema) == set(node), prefix
        for name, entry in schema.items():
            if isinstance(entry, dict):
                leaves(entry, node[name], f"{prefix}{name}.")

    leaves(SCHEMA, config)
    # The dump reloads to the same config.
    assert resolve_config(yaml.safe_load(dump_config(config))) == config


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.epochz=3"], "train.epochz"),
        (["model.atlasnet.primitves=2"], "model.atlasnet.primitves"),
        (["extra=1"], "extra"),
        (["train.epochs=ten"], "train.epochs"),
        (["train.epochs=2.5"], "train.epochs"),
        (["train.amp=1"], "train.amp"),
        (["train.lr=fast"], "train.lr"),
        (["train.milestones=[1, x]"], "train.milestones[1]"),
        (["model.name=transformer"], "model.name"),
        (["model.atlasnet.template=cone"], "model.atlasnet.template"),
        (["train.batch_size=0"], "train.batch_size"),
        (["model.bottleneck=null"], "model.bottleneck"),
        (["data=3"], "data"),
        (["data.root.x=1"], "data.root"),
    ],
)
def test_validation_names_the_key(base: Path, overrides: list[str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        load_config(base, overrides)


def test_unknown_key_in_file_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {"data": {"root": "x", "image_sise": 64}})
    with pytest.raises(ValueError, match=r"data\.image_sise") as error:
        load_config(path)
    assert "image_size" in str(error.value)  # the valid keys are listed


def test_required_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.root"):
        load_config(_write(tmp_path / "c.yaml", {"seed": 2}))


def test_float_keys_accept_ints_and_yaml_exponent_strings(base: Path) -> None:
    # PyYAML reads "1e-4" (no dot) as a string; float keys convert it.
    assert load_config(base, ["train.lr=1e-4"])["train"]["lr"] == pytest.approx(1e-4)
    assert load_config(base, ["train.gamma=1"])["train"]["gamma"] == 1.0
    assert isinstance(load_config(base, ["train.gamma=1"])["train"]["gamma"], float)


def test_inheritance_errors(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", {"inherit_from": "b.yaml"})
    _write(tmp_path / "b.yaml", {"inherit_from": "a.yaml"})
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"inherit_from": "missing.yaml"})
    with pytest.raises(ValueError, match="missing.yaml"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="d.yaml"):
        load_config(tmp_path / "d.yaml")


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1", "a.b=[unclosed"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(ValueError, match="override"):
        parse_override(bad)


def test_paper_preset_is_spec_section_5() -> None:
    config = load_config(REPO_ROOT / "configs" / "training" / "synthetic_paper.yaml")
    assert config["preset"] == "paper"
    assert config["data"]["root"] == "dataset/synthetic_data/cubesphere_1000"
    assert (config["data"]["num_points"], config["data"]["image_size"]) == (2500, 224)
    model = config["model"]
    assert (model["name"], model["bottleneck"]) == ("atlasnet", 1024)
    assert model["atlasnet"] == {
        "template": "sphere", "primitives": 1, "hidden": 512, "hidden_layers": 2, "sphere_level": 4,
        "grid_size": None,
    }  # fmt: skip
    assert model["psgn"]["hidden"] == [512, 512, 512]
    assert model["foldnet"]["hidden"] == [512, 512]
    train = config["train"]
    assert (train["batch_size"], train["epochs"], train["milestones"]) == (8, 1200, [800, 1000, 1100])
    assert (train["lr"], train["gamma"]) == (1e-3, 0.1)


def test_quick_preset_inherits_paper() -> None:
    quick = load_config(REPO_ROOT / "configs" / "training" / "synthetic_quick.yaml")
    paper = load_config(REPO_ROOT / "configs" / "training" / "synthetic_paper.yaml")
    assert quick["preset"] == "quick"
    assert quick["data"]["root"] == "dataset/synthetic_data/cubesphere_quick"
    assert quick["data"]["train_file"] == paper["data"]["train_file"]
    assert quick["train"]["batch_size"] == paper["train"]["batch_size"]
    assert quick["train"]["epochs"] < paper["train"]["epochs"]
    assert len(quick["train"]["milestones"]) == 3 and max(quick["train"]["milestones"]) < quick["train"]["epochs"]
