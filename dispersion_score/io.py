"""Result files: atomic writes, provenance, and DS results saved as JSON next to their `.npy` matrix.

A result file is a JSON object::

    {"format": "dispersion-score-result/1", "kind": "DispersionResult", "result": {...},
     "settings": {...}, "provenance": {...}, "matrix_file": "D.npy" or null}

``matrix_file`` is relative to the JSON file's directory. Every write goes to a temporary file in the target
directory first and is moved into place with ``os.replace``, so a killed job never leaves a half-written
result behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dispersion_score.artefact import FileRecord, check_file, record_file
from dispersion_score.atomic import atomic_save_npy, atomic_write_bytes, atomic_write_text

__all__ = [
    "RESULT_FORMAT",
    "atomic_save_npy",
    "atomic_write_bytes",
    "atomic_write_text",
    "FileScan",
    "dumps",
    "figure_bytes",
    "list_files",
    "read_npy",
    "read_npz",
    "scan_files",
    "load_result",
    "provenance",
    "result_document",
    "save_result",
    "to_jsonable",
]

RESULT_FORMAT = "dispersion-score-result/1"


@dataclasses.dataclass(frozen=True)
class FileScan:
    """What a directory scan read and what it left out.

    Attributes:
        files: the matching files, sorted by their path relative to the directory.
        skipped: reason → relative paths left out ("other suffix", "hidden", "subdirectory (not recursive)").
    """

    files: list[Path]
    skipped: dict[str, list[str]]

    def skipped_summary(self) -> list[str]:
        """One line per reason: ``skipped 2 files (other suffix): notes.txt, D.json``."""
        lines = []
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
            lines.append(f"skipped {len(names)} ({reason}): {shown}")
        return lines


def scan_files(
    directory: str | os.PathLike, suffixes: tuple[str, ...], *, what: str, recursive: bool = False
) -> FileScan:
    """The files of ``directory`` whose suffix is in ``suffixes`` (case-insensitive), and what was left out.

    Hidden files and folders (names starting with ".": lock files, editor and OS droppings such as macOS's
    "._name.png", notebook checkpoints) are never read. Subfolders are read only with ``recursive``.

    Raises:
        FileNotFoundError: ``directory`` does not exist. NotADirectoryError: it is a file.
        ValueError: it holds no such file (``what`` names them in the message, e.g. "shape files").
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"{what} directory not found: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"{what} directory {directory} is a file, not a directory")
    files: list[Path] = []
    skipped: dict[str, list[str]] = {}

    def skip(reason: str, path: Path) -> None:
        skipped.setdefault(reason, []).append(path.relative_to(directory).as_posix())

    pending = [directory]
    while pending:
        folder = pending.pop()
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                skip("hidden", path)
            elif path.is_dir() and path.is_symlink():
                skip("linked folder, not followed", path)
            elif path.is_dir():
                if recursive:
                    pending.append(path)
                else:
                    skip("subdirectory, not read without --recursive", path)
            elif path.suffix.lower() in suffixes and path.is_file():
                files.append(path)
            else:
                skip(f"not {'/'.join(suffixes)}", path)
    files.sort(key=lambda p: p.relative_to(directory).as_posix())
    if not files:
        raise ValueError(f"no {what} ({', '.join(suffixes)}) in {directory}")
    return FileScan(files, {reason: sorted(names) for reason, names in skipped.items()})


def list_files(
    directory: str | os.PathLike, suffixes: tuple[str, ...], *, what: str, recursive: bool = False
) -> list[Path]:
    """The files of :func:`scan_files` (sorted by relative path), without the report of what was skipped."""
    return scan_files(directory, suffixes, what=what, recursive=recursive).files


def read_npy(path: str | os.PathLike, *, what: str = "array", mmap_mode: str | None = None) -> np.ndarray:
    """One array from a `.npy` file, with a one-line error naming the file for anything else.

    ``mmap_mode`` ("r", ...) memory-maps the file instead of reading it (as ``numpy.load``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty (0-byte) or truncated file, a file that is not `.npy`, a pickled object
            array, or an `.npz` archive (several arrays).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"{what} {path} is a directory; expected a .npy file")
        raise FileNotFoundError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} file {path} is empty (0 bytes); expected a .npy array")
    try:
        array = np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"could not read {what} {path} (expected a .npy array): {exc}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} file {path} holds several arrays (an .npz archive); expected one .npy array")
    return array


def read_npz(path: str | os.PathLike, *, key: str | None = None, what: str = "array") -> np.ndarray:
    """One array of an `.npz` archive: the one named ``key``, or the only one when ``key`` is None.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable `.npz` archive, ``key`` not in it, no ``key`` and several arrays (the
            message lists the archive's names), or a pickled object array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"could not read {what} {path} (expected an .npz archive): {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{what} file {path} is a single .npy array, not an .npz archive; rename it to .npy")
    with loaded:
        names = list(loaded.files)
        if key is None and len(names) != 1:
            raise ValueError(
                f"{what} archive {path} holds {len(names)} arrays ({', '.join(names) or 'none'}); name the one "
                "to read (npz_key= / --npz-key)"
            )
        name = names[0] if key is None else key
        if name not in names:
            raise ValueError(f"{what} archive {path} has no array {name!r}; it holds: {', '.join(names) or 'none'}")
        try:
            return loaded[name]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"could not read array {name!r} of {what} archive {path}: {exc}") from None


def _package_version() -> str:
    from dispersion_score import __version__  # late import: this module is imported by the package

    return __version__


def _git_commit() -> str | None:
    source_dir = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source_dir, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _device_description(device: str | torch.device | None) -> dict[str, Any]:
    if device is None:
        return {"device": None}
    device = torch.device(device)
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["device_name"] = torch.cuda.get_device_name(index)
    elif device.type == "cpu":
        info["device_name"] = platform.processor() or platform.machine()
    return info


def provenance(device: str | torch.device | None = None) -> dict[str, Any]:
    """Where and with what a result was computed.

    Returns:
        dict with ``python``, ``torch``, ``torchvision``, ``numpy``, ``dispersion_score`` versions,
        ``cuda`` (torch's CUDA version or None), ``platform``, ``hostname``, ``time`` (ISO 8601, local time
        with UTC offset), ``git_commit`` (of the source tree, None outside git), ``device`` (as given, None if
        not) and ``device_name`` where it can be told.
    """
    try:
        import torchvision

        torchvision_version: str | None = str(torchvision.__version__)
    except ImportError:
        torchvision_version = None
    info = {
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),  # TorchVersion would not load with torch.load(weights_only=True)
        "torchvision": torchvision_version,
        "numpy": np.__version__,
        "dispersion_score": _package_version(),
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }
    info.update(_device_description(device))
    return info


def to_jsonable(value: Any) -> Any:
    """Converts dataclasses, numpy/torch scalars and arrays, paths and tuples into JSON types.

    Non-finite floats become the strings "nan", "inf", "-inf" so the file stays strict JSON.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.device | torch.dtype | np.dtype):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result file: {value!r}")


def dumps(document: Any) -> str:
    """Strict JSON (no NaN literals) of ``to_jsonable(document)`` with a final newline.

    Objects and lists of objects are indented; lists of scalars (labels, medoids) stay on one line, so a
    result for 35,000 items is not 35,000 lines long.
    """
    return _format_json(to_jsonable(document), 0) + "\n"


def _format_json(value: Any, level: int) -> str:
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_format_json(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_format_json(v, level + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)


def save_result(
    path: str | os.PathLike,
    result: Any,
    *,
    matrix: Any = None,
    matrix_path: str | os.PathLike | None = None,
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    kind: str | None = None,
) -> Path:
    """Saves a result with its settings and provenance as JSON, and its distance matrix as `.npy`.

    Args:
        path: the JSON file to write.
        result: a result dataclass (e.g. ``DispersionResult``), a dict, or a list of them (elbow curves,
            several seeds); numpy and torch values are converted.
        matrix: optional (N, N) distance matrix, written to ``matrix_path`` (default: ``path`` with suffix
            `.npy`).
        matrix_path: where the matrix goes; with ``matrix=None``, an existing `.npy` file to reference only.
        settings: everything needed to recompute the result (k, method, seeds, weights, ...).
        device: recorded in the provenance; default ``settings["device"]`` if present.
        kind: the document's ``kind``; default: the result's type name (``DispersionResult``, ...).

    Returns:
        The JSON path. Both files are written atomically, the matrix first.
    """
    path = Path(path)
    if path.suffix == ".npy":
        raise ValueError(f"result path {path} ends in .npy; expected a .json file (the matrix goes beside it)")
    settings = dict(settings or {})
    matrix_file = None
    if matrix is not None:
        target = Path(matrix_path) if matrix_path is not None else path.with_suffix(".npy")
        atomic_save_npy(target, matrix)
        matrix_file = target
    elif matrix_path is not None:
        matrix_file = Path(matrix_path)
        if not matrix_file.is_file():
            raise FileNotFoundError(f"matrix file {matrix_file} does not exist (pass matrix= to write it)")
    record = None
    if matrix_file is not None:
        record = record_file(matrix_file)  # what the matrix was, checked before it is read back (load_result)
        matrix_file = Path(os.path.relpath(matrix_file.resolve(), path.resolve().parent))
    document = result_document(result, settings=settings, matrix_file=matrix_file, device=device, kind=kind)
    if record is not None:
        document["matrix_record"] = record.to_json()
    atomic_write_text(path, dumps(document))
    return path


def result_document(
    result: Any,
    *,
    settings: Mapping[str, Any] | None = None,
    matrix_file: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The JSON document :func:`save_result` writes (also what the CLI prints with ``--json``).

    ``device`` defaults to ``settings["device"]``, ``kind`` to the result's type name; values are not yet
    converted (see :func:`dumps`).
    """
    settings = dict(settings or {})
    if device is None:
        device = settings.get("device")
    return {
        "format": RESULT_FORMAT,
        "kind": kind or _kind(result),
        "result": result,
        "settings": settings,
        "provenance": provenance(device),
        "matrix_file": matrix_file,
    }


def _kind(result: Any) -> str:
    if isinstance(result, list | tuple) and result:
        return f"list[{_kind(result[0])}]"
    return type(result).__name__


def load_result(path: str | os.PathLike, *, load_matrix: bool = True) -> dict[str, Any]:
    """Reads a file written by :func:`save_result`.

    Returns:
        The JSON document as a dict (``format``, ``kind``, ``result``, ``settings``, ``provenance``,
        ``matrix_file``) plus ``matrix``: the (N, N) array when there is one and ``load_matrix`` is true,
        else None. Results come back as plain dicts/lists.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"result file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"result file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
        raise ValueError(f"{path} is not a dispersion-score result file (expected format {RESULT_FORMAT!r})")
    document["matrix"] = None
    if load_matrix and document.get("matrix_file"):
        matrix_path = path.parent / document["matrix_file"]
        if not matrix_path.is_file():
            raise FileNotFoundError(f"matrix file {matrix_path} named by {path} does not exist")
        check_matrix(document, path)
        document["matrix"] = read_npy(matrix_path, what="matrix")
    return document


def check_matrix(document: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Raises ValueError naming the matrix file when the matrix that the result document (read from ``path``)
    names is not the file that was saved with it (size, shape, CRC-32: :mod:`dispersion_score.artefact`).
    Documents written before records were kept have none and are not checked."""
    if document.get("matrix_file") and document.get("matrix_record") is not None:
        record = FileRecord.from_json(document["matrix_record"])
        check_file(Path(path).parent / document["matrix_file"], record, what=f"matrix of {os.fspath(path)}")


def figure_bytes(figure: Any, suffix: str, *, dpi: int = 150, tight: bool = True) -> bytes:
    """Renders a matplotlib figure to bytes in the format named by ``suffix`` (".png", ".pdf", ...).

    ``tight`` crops the canvas to the drawn content (``bbox_inches="tight"``).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format=suffix.lstrip(".") or "png", bbox_inches="tight" if tight else None, dpi=dpi)
    return buffer.getvalue()


def save_figure(figure: Any, path: str | os.PathLike, *, dpi: int = 150, tight: bool = True) -> Path:
    """Writes a matplotlib figure to ``path`` atomically, in the format of its suffix; returns the path."""
    path = Path(path)
    return atomic_write_bytes(path, figure_bytes(figure, path.suffix.lower(), dpi=dpi, tight=tight))
