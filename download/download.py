"""Download the data and trained networks that the original release offers, unpacked where this project reads them.

Usage (the .sh files beside this one call it):

    bash download/download_data.sh          # ShapeNet point clouds + R2N2 renders, the original's synthetic
                                            # data and its yaw-limited renders
    bash download/download_checkpts.sh      # the paper's trained networks (48 + 21 + 24 runs)
    python download/download.py list        # what exists, where it goes, what is already there

Options: ``--only NAME ...`` (a subset), ``--from-dir DIR`` (take the .zip files from DIR, e.g. downloaded in a
browser, instead of Google Drive), ``--keep-archives``, ``--cache-dir DIR`` (where archives are downloaded;
default ``.downloads/``), ``--dry-run``, ``--root DIR`` (the repository root; default: this script's parent).

Behaviour:

* Resumable: an interrupted download continues where it stopped (gdown's ``resume``); finished archives and
  finished targets are skipped on a rerun.
* Nothing half-unpacked: each archive is checked (size and SHA-256 where known, the CRC of every member
  always), unpacked into a temporary folder beside its target, and moved into place with one rename. The
  target then holds ``.download_complete.json`` (archive, Drive id, SHA-256, size).
* Never overwrites: a target that exists without that marker (your own data, e.g. this project's builder
  writes ``dataset/synthetic_data/cubesphere_1000``; the original's synthetic data therefore goes to
  ``dataset/synthetic_data/original_cubesphere_1000``) stops the script before anything is downloaded.
* Offline: the script checks that Google Drive (or your HTTPS proxy) is reachable before it writes anything,
  and fails at once with a message saying what to do. ``DS_DOWNLOAD_OFFLINE=1`` forces this path;
  ``DS_DOWNLOAD_PROBE=host:port`` names the address checked (both are for tests).
* The Google Drive client gdown is needed only here (``pip install gdown``), not by the library; nothing
  else in the project downloads anything at run time.

Exit status: 0 done (or nothing to do), 1 refused or failed (conflict, corrupt archive, missing file in
--from-dir, disk full), 2 gdown missing, 3 offline, 4 Google Drive refused a file (dead link, quota).

This script uses the standard library only (gdown is imported when a download starts), so it runs before
the project is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The project's one directory lock (standard library only, like this script): imported from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dispersion_score.locks import directory_lock  # noqa: E402
from dispersion_score.paths import check_writable_folder  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_NO_GDOWN, EXIT_OFFLINE, EXIT_DRIVE = 0, 1, 2, 3, 4
MARKER = ".download_complete.json"
DEFAULT_PROBE = ("drive.google.com", 443)
PROBE_TIMEOUT_S = 5.0
SPACE_MARGIN = 1.05  # unpacked size × margin must fit on the target's disk
DRIVE_URL = "https://drive.google.com/file/d/{}/view"
SHAPENET_CORE_HELP = (
    "ShapeNetCore.v1 meshes (needed only to render yaw-limited images yourself) cannot be downloaded by a script:\n"
    "  they need an account at https://shapenet.org. Put them at dataset/data/ShapeNetCore.v1/<synset>/<model id>/"
    "model.obj\n  (the layout of ShapeNetCore.v1.zip: one folder per synset id, e.g. 02691156)."
)


class DownloadFailure(Exception):
    """A failure with the exit status it maps to and a message that says what to do."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Archive:
    """One Google Drive archive of the original release and where its content goes.

    ``top`` is the folder the archive holds at its root (the original's scripts unzip and then move it);
    ``target`` is where it ends up, relative to the repository root. ``size``/``sha256`` are checked when known
    (None: the release publishes none; the SHA-256 seen is recorded in the target's marker).
    """

    name: str
    group: str
    filename: str
    drive_id: str
    top: str
    target: str
    description: str
    size: int | None = None
    sha256: str | None = None


ARCHIVES = (
    Archive("shapenet-pointclouds", "data", "ShapeNetV1PointCloud.zip", "1MMCYOqSalz77dduKahqDEQKFP9aCvUCy",
            "ShapeNetV1PointCloud", "dataset/data/ShapeNetV1PointCloud",
            "AtlasNet's ShapeNet point clouds (<synset>/<id>.points.ply.npy, 30,000 points each)"),
    Archive("shapenet-renderings", "data", "ShapeNetV1Renderings.zip", "153nd1oUd5ONnP8AoXaU8IZunskd5LEvB",
            "ShapeNetV1Renderings", "dataset/data/ShapeNetV1Renderings",
            "3D-R2N2 renders as AtlasNet distributes them (24 views per shape, 137x137)"),
    Archive("original-cubesphere", "data", "cubesphere_1000.zip", "1NuNCAVjiQb3OXtWWZ9_cKkUxUWvtjpzy",
            "cubesphere_1000", "dataset/synthetic_data/original_cubesphere_1000",
            "the original's Blender cube-sphere dataset (its own folder: never our builder's cubesphere_1000)"),
    Archive("original-anglelimit", "data", "ShapeNetV1RenderingAnglelimit.zip", "1Y2nAktYbeRJ23bhjqZp3c4kh5P8oBYdp",
            "ShapeNetV1RenderingAnglelimit", "dataset/data/ShapeNetV1RenderingAnglelimit",
            "the original's yaw-limited ShapeNet renders (r = 0, 15, ..., 90)"),
    Archive("train-synthetic", "checkpoints", "toydata_checkpoints.zip", "1h3mZUMueGfrhPTZo1BoNNYLyPymlpZb7",
            "train_synthetic", "log/train_synthetic", "the 48 synthetic AtlasNet runs (image_aug/shape_aug x 8 x 3)"),
    Archive("more-imgs", "checkpoints", "shapenet_moreimgs_checkpoints.zip", "1EMdeJKc906Xn_RPWZSup-4s_TjNsp0IM",
            "more_imgs", "log/more_imgs", "the 21 more-dispersed-images runs (7 yaw ranges x 3 seeds)"),
    Archive("more-shapes", "checkpoints", "shapenet_moreshapes_checkpoints.zip", "15ZUTzQAGtlJs-mUX0waY0pdnlLf3eO7n",
            "more_shapes", "log/more_shapes", "the 24 more-dispersed-shapes runs (OC/VC x 4 decoders x 3 seeds)"),
)  # fmt: skip
GROUPS = ("data", "checkpoints")


# ------------------------------------------------------------------------------------------------ public


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    root = Path(args.root).resolve()
    try:
        check_writable_folder(root, "--root")
        if args.cache_dir:
            check_writable_folder(args.cache_dir, "--cache-dir")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.command == "list":
        _print_list(root)
        return EXIT_OK
    try:
        archives = _select(args.command, args.only)
        run(
            archives,
            root=root,
            cache_dir=Path(args.cache_dir).resolve() if args.cache_dir else root / ".downloads",
            from_dir=Path(args.from_dir).resolve() if args.from_dir else None,
            keep_archives=args.keep_archives,
            dry_run=args.dry_run,
        )
    except DownloadFailure as failure:
        print(f"\nerror: {failure}", file=sys.stderr)
        return failure.status
    except (OSError, RuntimeError) as error:  # an unwritable folder, a file where a folder goes, a held lock
        print(f"\nerror: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if args.command == "data":
            print("\n" + SHAPENET_CORE_HELP)
    return EXIT_OK


def run(
    archives: Sequence[Archive],
    *,
    root: Path,
    cache_dir: Path,
    from_dir: Path | None = None,
    keep_archives: bool = False,
    dry_run: bool = False,
) -> list[Path]:
    """Downloads (or takes from ``from_dir``), checks and unpacks ``archives``; returns the targets made.

    Every target is checked before anything is written, so a conflict or the absence of a network costs
    nothing and leaves nothing behind.

    Raises:
        DownloadFailure: with the exit status and a message saying what to do.
    """
    pending = [archive for archive in archives if not _done(archive, root)]
    for archive in archives:
        if archive not in pending:
            print(f"{archive.name}: already in {archive.target} (remove that folder to download it again)")
    _check_targets(pending, root)
    if not pending:
        return []
    sources = {archive: _local_source(archive, from_dir, cache_dir) for archive in pending}
    to_download = [archive for archive, path in sources.items() if path is None]
    for archive in pending:
        where = "download" if sources[archive] is None else f"use {sources[archive]}"
        print(f"{archive.name}: {where} -> {archive.target}  ({archive.description})")
    if dry_run:
        return []
    downloader = None
    if to_download:
        _check_online(to_download)
        downloader = _gdown()
    made = []
    created = [folder for folder in (cache_dir, *cache_dir.parents) if not folder.exists()]
    try:
        # One download run at a time: it owns its cache folder (and so the targets it unpacks) until it ends.
        with directory_lock(cache_dir, what="download cache"):
            _fetch_all(pending, sources, root, cache_dir, downloader, from_dir, keep_archives, made)
    finally:
        for folder in created:  # made only for the lock and left empty (deepest first): leave nothing behind
            with contextlib.suppress(OSError):
                folder.rmdir()
    return made


def _fetch_all(
    pending: Sequence[Archive],
    sources: dict[Archive, Path | None],
    root: Path,
    cache_dir: Path,
    downloader: Any,
    from_dir: Path | None,
    keep_archives: bool,
    made: list[Path],
) -> None:
    """Takes or downloads, checks and unpacks each archive in turn (appending each target made to ``made``)."""
    for archive in pending:
        path = sources[archive] or _download(archive, cache_dir, downloader)
        ours = from_dir is None  # a file in our cache: deleted when corrupt or once unpacked
        digest = _verify(archive, path, cached=ours)
        made.append(_unpack(archive, path, root, digest))
        if ours and not keep_archives:
            path.unlink()


# ------------------------------------------------------------------------------------------------ steps


def _select(group: str, only: Sequence[str] | None) -> list[Archive]:
    candidates = [archive for archive in ARCHIVES if archive.group == group]
    if not only:
        return candidates
    names = {archive.name: archive for archive in candidates}
    unknown = [name for name in only if name not in names]
    if unknown:
        raise DownloadFailure(f"unknown {group} archive(s) {unknown}; choose from {sorted(names)}")
    return [names[name] for name in only]


def _done(archive: Archive, root: Path) -> bool:
    marker = root / archive.target / MARKER
    try:
        return json.loads(marker.read_text()).get("google_drive_id") == archive.drive_id
    except (OSError, ValueError, AttributeError):
        return False


def _check_targets(archives: Sequence[Archive], root: Path) -> None:
    conflicts = [archive for archive in archives if (root / archive.target).exists()]
    if conflicts:
        lines = [
            f"  {root / archive.target} exists but was not unpacked by this script (no {MARKER}): "
            + ("this project's own synthetic data? " if "synthetic_data" in archive.target else "")
            + "it is left untouched."
            for archive in conflicts
        ]
        raise DownloadFailure(
            "refusing to overwrite existing folders:\n" + "\n".join(lines) + "\nMove them elsewhere and rerun, or "
            "skip these archives with --only."
        )


def _local_source(archive: Archive, from_dir: Path | None, cache_dir: Path) -> Path | None:
    if from_dir is not None:
        path = from_dir / archive.filename
        if not path.is_file():
            raise DownloadFailure(
                f"{archive.filename} not found in {from_dir} (--from-dir); download it from "
                f"{DRIVE_URL.format(archive.drive_id)} into that folder, or drop --from-dir"
            )
        return path
    cached = cache_dir / archive.filename
    return cached if cached.is_file() else None


def _probe_address() -> tuple[str, int]:
    override = os.environ.get("DS_DOWNLOAD_PROBE")
    if override:
        host, _, port = override.rpartition(":")
        return host, int(port)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        proxy = os.environ.get(name)
        if proxy:
            parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if parsed.hostname:
                return parsed.hostname, parsed.port or 1080
    return DEFAULT_PROBE


def _check_online(archives: Sequence[Archive]) -> None:
    host, port = _probe_address()
    reason = "DS_DOWNLOAD_OFFLINE is set" if os.environ.get("DS_DOWNLOAD_OFFLINE") else None
    if reason is None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                pass
        except OSError as error:
            reason = f"cannot connect to {host}:{port} ({error})"
    if reason:
        links = "\n".join(f"  {a.filename}: {DRIVE_URL.format(a.drive_id)}" for a in archives)
        raise DownloadFailure(
            f"no connection to Google Drive: {reason}. Nothing was downloaded or written.\n"
            "What to do: connect this machine to the internet and rerun the same command (it resumes), or\n"
            "download these files on another machine (e.g. in a browser) and rerun with --from-dir DIR:\n" + links,
            EXIT_OFFLINE,
        )


def _gdown():  # noqa: ANN202 - the gdown.download function
    try:
        import gdown
    except ImportError:
        raise DownloadFailure(
            "the Google Drive client gdown is not installed (it is needed only by these download scripts): "
            f"run `{sys.executable} -m pip install 'gdown>=4.6'` and rerun; or download the files in a browser "
            "and rerun with --from-dir DIR",
            EXIT_NO_GDOWN,
        ) from None
    import inspect

    if "resume" not in inspect.signature(gdown.download).parameters:
        raise DownloadFailure(
            f"gdown {getattr(gdown, '__version__', '?')} cannot resume downloads: "
            f"run `{sys.executable} -m pip install -U 'gdown>=4.6'`",
            EXIT_NO_GDOWN,
        )
    return gdown.download


def _download(archive: Archive, cache_dir: Path, downloader) -> Path:  # noqa: ANN001
    cache_dir.mkdir(parents=True, exist_ok=True)
    output = cache_dir / archive.filename
    print(f"\n{archive.name}: downloading {archive.filename} from Google Drive (resumable: rerun if interrupted)")
    _log(cache_dir, f"start {archive.filename} ({archive.drive_id})")
    try:
        result = downloader(id=archive.drive_id, output=str(output), quiet=False, resume=True)
    except Exception as error:  # noqa: BLE001 - gdown's and requests' errors all mean "Drive refused or failed"
        result, reason = None, f"{type(error).__name__}: {error}"
    else:
        reason = "gdown returned no file"
    if not result or not output.is_file():
        _log(cache_dir, f"failed {archive.filename}: {reason}")
        raise DownloadFailure(
            f"Google Drive did not deliver {archive.filename} ({reason}). The link may be dead or the file over its "
            f"download quota (try again later). Any partial download stays in {cache_dir} and is resumed on the "
            f"next run; or download {DRIVE_URL.format(archive.drive_id)} in a browser and rerun with --from-dir DIR.",
            EXIT_DRIVE,
        )
    _log(cache_dir, f"done {archive.filename}")
    return output


def _verify(archive: Archive, path: Path, *, cached: bool) -> str:
    problems = []
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        problems.append(f"size {size} bytes, expected {archive.size}")
    digest = _sha256(path)
    if archive.sha256 is not None and digest != archive.sha256:
        problems.append(f"SHA-256 {digest}, expected {archive.sha256}")
    if not problems:
        try:
            with zipfile.ZipFile(path) as handle:
                bad = handle.testzip()
                if bad is not None:
                    problems.append(f"member {bad!r} fails its CRC check")
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            problems.append(f"not a readable zip file ({error})")
    if problems:
        what = "; ".join(problems)
        if cached:
            path.unlink(missing_ok=True)
            raise DownloadFailure(f"{path.name} is corrupt ({what}); it was deleted: rerun to download it again")
        raise DownloadFailure(f"{path} is corrupt ({what}); download it again ({DRIVE_URL.format(archive.drive_id)})")
    return digest


def _unpack(archive: Archive, path: Path, root: Path, digest: str) -> Path:
    target = root / archive.target
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as handle:
        members = handle.infolist()
        _check_members(archive, members)
        needed = int(sum(member.file_size for member in members) * SPACE_MARGIN)
        free = shutil.disk_usage(target.parent).free
        if needed > free:
            raise DownloadFailure(
                f"{archive.filename} unpacks to {needed / 1e9:.1f} GB but {target.parent} has {free / 1e9:.1f} GB "
                "free: make room and rerun (the archive is kept)"
            )
        print(f"{archive.name}: unpacking {len(members)} entries ({needed / 1e9:.2f} GB) into {target}")
        for stale in target.parent.glob(f".{target.name}.unpack-*"):  # left by a killed earlier run
            shutil.rmtree(stale, ignore_errors=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpack-", dir=target.parent))
        try:
            handle.extractall(temporary)
            content = _content_root(archive, temporary)
            marker = {
                "archive": archive.filename,
                "google_drive_id": archive.drive_id,
                "sha256": digest,
                "size": path.stat().st_size,
                "unpacked": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "by": "download/download.py",
            }
            (content / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            os.rename(content, target)  # one step: the target is complete or absent
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    print(f"{archive.name}: ready in {target}")
    return target


def _check_members(archive: Archive, members: Sequence[zipfile.ZipInfo]) -> None:
    for member in members:
        name = member.filename
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DownloadFailure(f"{archive.filename}: refusing a member outside the target: {name!r}")


def _content_root(archive: Archive, temporary: Path) -> Path:
    if (temporary / archive.top).is_dir():
        return temporary / archive.top
    entries = [p for p in temporary.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        print(f"{archive.name}: the archive's top folder is {entries[0].name!r}, not {archive.top!r}; using it")
        return entries[0]
    # the files sit at the archive's root: the temporary folder itself becomes the target
    inner = temporary / f".content-{archive.top}"
    inner.mkdir()
    for entry in entries:
        entry.rename(inner / entry.name)
    return inner


# ------------------------------------------------------------------------------------------------ helpers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _log(cache_dir: Path, line: str) -> None:
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    with open(cache_dir / "download.log", "a") as handle:
        handle.write(f"{stamp} {line}\n")


def _print_list(root: Path) -> None:
    if not root.is_dir():
        print(f"--root {root} does not exist yet: nothing has been downloaded there\n")
    for group in GROUPS:
        print(f"{group} (bash download/download_{'data' if group == 'data' else 'checkpts'}.sh):")
        for archive in (a for a in ARCHIVES if a.group == group):
            state = "present" if _done(archive, root) else ("CONFLICT" if (root / archive.target).exists() else "-")
            print(f"  {archive.name:22} {state:8} {archive.target:48} {archive.filename}")
    print("\n" + SHAPENET_CORE_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=(*GROUPS, "list"), help="what to download (list: show the archives)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="a subset (names as `list` shows them)")
    parser.add_argument("--from-dir", metavar="DIR", help="take the .zip files from DIR instead of Google Drive")
    parser.add_argument("--cache-dir", metavar="DIR", help="where archives are downloaded (default ROOT/.downloads)")
    parser.add_argument("--keep-archives", action="store_true", help="keep downloaded archives after unpacking")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="repository root")
    return parser


if __name__ == "__main__":
    sys.exit(main())
