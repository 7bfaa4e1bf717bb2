"""The synthetic experiment's sweep settings (``configs/synthetic_sweep_<preset>.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = ("image_aug", "shape_aug")


@dataclass(frozen=True)
class EvalSettings:
    """How DS is measured. ``ds_seed`` seeds k-medoids and the ground-truth point sampling."""

    k: int = 2
    method: str = "pam"
    ds_seed: int = 0
    shape_points: int = 2500
    image_weights: str = "imagenet"
    batch_size: int = 50


@dataclass(frozen=True)
class DataSettings:
    """How the synthetic data is built (``python -m dataset.synthetic``)."""

    image_size: int = 224
    points: int = 30000
    build_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepConfig:
    """One preset of the synthetic experiment. Relative paths are relative to the repository root."""

    preset: str
    train_config: Path
    runs_dir: Path
    results_dir: Path
    data: DataSettings = field(default_factory=DataSettings)
    kinds: tuple[str, ...] = KINDS
    cluster_sizes: tuple[int, ...] = (1, 5, 10, 15, 20, 25, 30, 35)
    seeds: tuple[int, ...] = (1,)
    train_overrides: tuple[str, ...] = ()
    eval: EvalSettings = field(default_factory=EvalSettings)
    workers: int = 1
    source: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, EvalSettings | DataSettings):
                value = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
            out[item.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def preset_path(preset: str) -> Path:
    """Path of the sweep file of a named preset ("quick", "paper")."""
    path = REPO_ROOT / "configs" / f"synthetic_sweep_{preset}.yaml"
    if not path.exists():
        available = sorted(p.stem.removeprefix("synthetic_sweep_") for p in path.parent.glob("synthetic_sweep_*"))
        raise ValueError(f"unknown preset {preset!r}; available: {available}")
    return path


def load_sweep_config(path: Path | str, **overrides: Any) -> SweepConfig:
    """Read and validate a sweep file; ``overrides`` replace top-level keys (e.g. ``seeds=(1, 2)``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read sweep config {path}: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    raw.update({key: value for key, value in overrides.items() if value is not None})
    return _parse(raw, path)


def _parse(raw: dict[str, Any], path: Path) -> SweepConfig:
    known = {f.name for f in fields(SweepConfig)} - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys: {sorted(known)}")
    for required in ("preset", "train_config", "runs_dir", "results_dir"):
        if required not in raw:
            raise ValueError(f"{path}: missing key {required!r}")
    data = _sub_settings(DataSettings, raw.get("data", {}), f"{path}: data")
    evaluation = _sub_settings(EvalSettings, raw.get("eval", {}), f"{path}: eval")
    kinds = tuple(raw.get("kinds", KINDS))
    bad_kinds = [kind for kind in kinds if kind not in KINDS]
    if bad_kinds:
        raise ValueError(f"{path}: kinds {bad_kinds} not in {list(KINDS)}")
    return SweepConfig(
        preset=str(raw["preset"]),
        train_config=_repo_path(raw["train_config"]),
        runs_dir=_repo_path(raw["runs_dir"]),
        results_dir=_repo_path(raw["results_dir"]),
        data=DataSettings(**{**data, "build_args": tuple(data.get("build_args", ()))}),
        kinds=kinds,
        cluster_sizes=tuple(int(s) for s in raw.get("cluster_sizes", SweepConfig.cluster_sizes)),
        seeds=tuple(int(s) for s in raw.get("seeds", (1,))),
        train_overrides=tuple(str(item) for item in raw.get("train_overrides", ())),
        eval=EvalSettings(**evaluation),
        workers=int(raw.get("workers", 1)),
        source=path,
    )


def _sub_settings(kind: type, raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    valid = {f.name: f for f in fields(kind)}
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid keys: {sorted(valid)}")
    for key, value in raw.items():
        default = getattr(kind(), key)
        expected = type(default)
        if expected is tuple:
            if not isinstance(value, list | tuple):
                raise ValueError(f"{where}.{key}: expected a list, got {value!r}")
        elif not isinstance(value, expected) or isinstance(value, bool) != isinstance(default, bool):
            raise ValueError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
    return dict(raw)


def _repo_path(value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else REPO_ROOT / path
