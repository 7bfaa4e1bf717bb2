"""Training configs: YAML files with ``inherit_from``, ``--set key.sub=value`` overrides and a typed schema.

A config file holds only what differs from the defaults below (``SCHEMA``); ``inherit_from: other.yaml``
(relative to the file that names it) starts from another file. ``load_config`` returns the *resolved* config:
every key of the schema, validated, as plain dicts/lists/scalars that ``yaml.safe_dump`` can write.

Rules:
  * an unknown key, a value of the wrong type or a value outside its choices → ValueError naming the key path
    (``model.atlasnet.primitves: unknown key; valid keys: ...``);
  * ints are accepted where floats are expected; strings such as ``1e-3`` (PyYAML reads a float without a dot
    as a string) are converted for float keys;
  * override values are parsed with ``yaml.safe_load`` (``--set train.milestones=[10,20]``,
    ``--set model.atlasnet.grid_size=null``).

The ``run`` section holds settings that do not change what a run computes (checkpoint frequency, data loader
workers, progress bars, the debug stop); a run may be resumed with different ``run`` settings. The ``data`` section
belongs to the dataset registry (:data:`dataset.registry.DATA_SCHEMA`, docs/datasets.md); the schema language
(:class:`~dataset.schema.Key`, its defaults and validation) is :mod:`dataset.schema`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dataset.registry import DATA_SCHEMA
from dataset.schema import Key, schema_defaults, validate

MODEL_NAMES = ("atlasnet", "psgn", "foldnet")

# The four decoders of the paper's ShapeNet experiments (docs/experiments.md), as model settings.
DECODERS: dict[str, dict[str, Any]] = {
    "atlasnet_sphere1": {"name": "atlasnet", "atlasnet": {"template": "sphere", "primitives": 1}},
    "atlasnet_square25": {"name": "atlasnet", "atlasnet": {"template": "square", "primitives": 25}},
    "foldnet": {"name": "foldnet"},
    "psgn": {"name": "psgn"},
}


def decoder_overrides(decoder: str) -> list[str]:
    """``--set`` overrides that select one of :data:`DECODERS` (``model.name=atlasnet`` ...)."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; known: {sorted(DECODERS)}")
    return [f"model.{key}={value}" for key, value in _flatten(DECODERS[decoder])]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


RUNTIME_SECTION = "run"


SCHEMA: dict[str, Any] = {
    "preset": Key(str, "custom", "name recorded with results (paper, quick, ...)"),
    "seed": Key(int, 1, "seeds python, numpy, torch, the model initialisation and the data order"),
    # The data section is the dataset registry's (dataset.registry.DATA_SCHEMA): the keys every dataset reads and
    # one section per registered dataset with settings of its own (data.shapenet); live, so a dataset registered
    # later (a test, a new experiment) has its section here too.
    "data": DATA_SCHEMA,
    "model": {
        "name": Key(str, "atlasnet", "decoder", choices=MODEL_NAMES),
        "bottleneck": Key(int, 1024, "latent size: ResNet-18 fc output, AtlasNet first decoder layer width", minimum=1),
        "num_points": Key(
            int, None, "points per training prediction; null = data.num_points", nullable=True, minimum=1
        ),
        "atlasnet": {
            "template": Key(str, "sphere", "primitive template", choices=("sphere", "square")),
            "primitives": Key(int, 1, "number of patches", minimum=1),
            "hidden": Key(int, 512, "width of the decoder layers after the first", minimum=1),
            "hidden_layers": Key(int, 2, "number of hidden → hidden layers", minimum=0),
            "sphere_level": Key(int, 4, "icosphere subdivision of the regular sphere (4 → 2562 points)", minimum=0),
            "grid_size": Key(
                int, None, "square patch grid side for predict; null = sqrt(points/patch)", nullable=True, minimum=1
            ),
        },
        "psgn": {
            "hidden": Key(list, [512, 512, 512], "hidden layer widths", item_type=int),
        },
        "foldnet": {
            "grid_size": Key(
                int, None, "side of the folded grid; null = round(sqrt(num_points))", nullable=True, minimum=1
            ),
            "hidden": Key(list, [512, 512], "hidden widths of each fold", item_type=int),
        },
    },
    "train": {
        "epochs": Key(int, 1200, "number of epochs", minimum=1),
        "batch_size": Key(int, 8, "items per step", minimum=1),
        "lr": Key(float, 1e-3, "Adam learning rate"),
        "milestones": Key(list, [800, 1000, 1100], "epochs after which lr is multiplied by gamma", item_type=int),
        "gamma": Key(float, 0.1, "learning-rate factor at each milestone"),
        "weight_decay": Key(float, 0.0, "Adam weight decay"),
        "amp": Key(bool, False, "mixed precision on CUDA (ignored on CPU)"),
        "amp_dtype": Key(str, "float16", "autocast dtype on CUDA", choices=("float16", "bfloat16")),
    },
    "eval": {
        "every": Key(int, 1, "validate every N epochs (the last epoch always); 0 = last epoch only", minimum=0),
        "items": Key(int, None, "validate on this many evenly spaced val items; null = all", nullable=True, minimum=1),
        "batch_size": Key(int, 32, "validation batch size", minimum=1),
        "fscore_threshold": Key(
            float,
            None,
            "F-score threshold tau; null = the convention's default (0.01 euclidean)",
            nullable=True,
        ),
        "fscore_convention": Key(
            str,
            "euclidean",
            "F-score convention (dispersion_score.fscore)",
            choices=("euclidean", "atlasnet_squared"),
        ),
    },
    RUNTIME_SECTION: {
        "checkpoint_every": Key(int, 1, "write checkpoint.pt every N epochs (and when the run stops)", minimum=1),
        "keep_checkpoint": Key(bool, False, "keep checkpoint.pt after the run finished (final.pt has the weights)"),
        "stop_after_epochs": Key(
            int, None, "debug: stop (resumable) after this many epochs in total", nullable=True, minimum=1
        ),
        "num_workers": Key(int, 0, "DataLoader worker processes", minimum=0),
        "cache_data": Key(bool, False, "keep loaded items in memory (small datasets, num_workers = 0)"),
        "progress": Key(bool, True, "tqdm progress bars (only on a terminal)"),
    },
}


def default_config(schema: Mapping[str, Any] = SCHEMA) -> dict[str, Any]:
    """The schema's defaults (for the training schema, ``data.root`` is None and must be set)."""
    return schema_defaults(schema)


def load_config(
    path: str | Path, overrides: Sequence[str] = (), *, schema: Mapping[str, Any] = SCHEMA
) -> dict[str, Any]:
    """Reads a config file (following ``inherit_from``), applies ``key.sub=value`` overrides, validates.

    Args:
        path: the YAML file.
        overrides: strings ``"dotted.key=value"``; values are parsed with ``yaml.safe_load``.
        schema: the schema to validate against: the training schema ``SCHEMA`` (default) or another one
            built from :class:`Key` leaves (experiment presets use this loader too).

    Returns:
        The resolved config: every key of ``schema`` with its value.

    Raises:
        ValueError: a missing file in the inheritance chain, a cycle, a malformed override, an unknown key
            or a value of the wrong type (the message names the file or the key path).
    """
    return resolve_config(read_config(path, overrides), schema=schema)


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The merged, not yet validated content of a config file (``inherit_from`` followed, overrides applied).

    Raises:
        ValueError: as :func:`load_config`, except for schema errors.
    """
    merged = _read_with_inheritance(Path(path), seen=())
    for override in overrides:
        _apply_override(merged, override)
    return merged


def resolve_config(config: Mapping[str, Any], *, schema: Mapping[str, Any] = SCHEMA) -> dict[str, Any]:
    """Fills defaults into a partial config and validates it against ``schema``; returns a new dict."""
    resolved = default_config(schema)
    _merge(resolved, dict(config), path="")
    validate(resolved, schema)
    return resolved


def parse_override(override: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` → (["a", "b"], yaml.safe_load("value"))."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"override must look like key.sub=value, got {override!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ValueError(f"override {override!r}: value is not valid YAML ({yaml_error_summary(error)})") from None
    return key.split("."), value


class _ConfigDumper(yaml.SafeDumper):
    """Sections in block style, lists of scalars on one line."""


_ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML text of a resolved config (keys in schema order)."""
    return yaml.dump(dict(config), Dumper=_ConfigDumper, sort_keys=False, default_flow_style=False)


def results_relevant(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without its ``run`` section: what must match for a run to be resumed."""
    return {key: value for key, value in config.items() if key != RUNTIME_SECTION}


def _read_with_inheritance(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " → ".join(str(p) for p in (*seen, path))
        raise ValueError(f"inherit_from cycle: {chain}")
    content = read_yaml(path, what="config file") or {}
    if not isinstance(content, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level, got {type(content).__name__}")
    parent = content.pop("inherit_from", None)
    if parent is None:
        return content
    if not isinstance(parent, str):
        raise ValueError(f"{path}: inherit_from must be a file path, got {parent!r}")
    base = _read_with_inheritance(path.parent / parent, seen=(*seen, path))
    _merge(base, content, path="", where=str(path))
    return base


def yaml_error_summary(error: yaml.YAMLError) -> str:
    """A PyYAML error in one line: what is wrong and where (``mapping values are not allowed here at line 3,
    column 9``), instead of PyYAML's several lines with the offending text drawn under a caret."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem is None:
        return " ".join(str(error).split())
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(error, "context", None)
    return f"{context + ': ' if context else ''}{problem}{where}"


def read_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """The content of a YAML file (an empty file gives None), with one-line errors naming the file.

    Raises:
        ValueError: the file does not exist, is a directory, is not UTF-8 text or is not valid YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {'is a directory' if path.is_dir() else 'not found'}: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ValueError(f"{what} {path} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path} is not valid YAML: {yaml_error_summary(error)}") from None


def _merge(base: dict[str, Any], update: Mapping[str, Any], *, path: str, where: str = "") -> None:
    """Recursive update: mappings merge key by key, anything else replaces."""
    for key, value in update.items():
        if not isinstance(key, str):
            raise ValueError(f"{_describe(path + str(key), where)}: keys must be strings, got {key!r}")
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, path=f"{path}{key}.", where=where)
        else:
            base[key] = copy.deepcopy(value) if not isinstance(value, Mapping) else dict(value)


def _describe(path: str, where: str) -> str:
    return f"{where}: {path}" if where else path


def _apply_override(config: dict[str, Any], override: str) -> None:
    parts, value = parse_override(override)
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ValueError(f"override {override!r}: {prefix} is a value, not a section")
        node = child
    node[parts[-1]] = value
