"""Progress across the tiles of a matrix: done/total, pairs/s and ETA, in the terminal and in a log file.

Workers anywhere (local processes, GPUs, SLURM nodes) report nothing to the caller directly; each
finished tile leaves a completion marker in the shared work directory, and this monitor counts them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from dispersion_score._tile_plan import Tile, marker_path

_POLL_SECONDS = 1.0
_LOG_EVERY_SECONDS = 10.0


def format_duration(seconds: float) -> str:
    """``"3d 04h"``, ``"2h 05m"``, ``"4m 10s"`` or ``"12.3s"``."""
    if seconds != seconds or seconds == float("inf"):  # NaN or inf: nothing measured yet
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


class TileProgress:
    """Counts finished tiles by their markers.

    Args:
        workdir: the work directory (markers in ``workdir/tiles``).
        tiles: every tile of the matrix; ``pending``: those this run computes (the others are done).
        log_file: appended with a line at the start, at most every 10 s while tiles finish, and at the end.
        show: draw a tqdm bar (unit: pairs) on stderr; position: its line (1 below the job runner's bar).
    """

    def __init__(
        self,
        workdir: Path,
        tiles: Sequence[Tile],
        pending: Sequence[Tile],
        log_file: Path,
        *,
        show: bool,
        position: int = 0,
    ) -> None:
        self.workdir, self.log_file = workdir, log_file
        self.total_pairs = sum(t.pairs for t in tiles)
        self.total_tiles = len(tiles)
        self.pending = {t.index: t for t in pending}
        self.done_pairs = self.total_pairs - sum(t.pairs for t in pending)
        self.done_tiles = self.total_tiles - len(pending)
        self.start_pairs = self.done_pairs
        self.started = time.monotonic()
        self.last_log = 0.0
        self.bar = tqdm(
            total=self.total_pairs,
            initial=self.done_pairs,
            desc="matrix tiles",
            unit="pair",
            unit_scale=True,
            disable=not show,
            position=position,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log(f"start: {self.done_tiles}/{self.total_tiles} tiles already done, {len(pending)} to compute")

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done_pairs - self.start_pairs) / elapsed if elapsed > 0 else 0.0

    def status(self) -> str:
        rate = self.rate()
        remaining = self.total_pairs - self.done_pairs
        eta = remaining / rate if rate > 0 else float("inf")
        return (
            f"{self.done_tiles}/{self.total_tiles} tiles, {self.done_pairs:.4g}/{self.total_pairs:.4g} pairs, "
            f"{rate:,.0f} pairs/s, ETA {format_duration(eta) if remaining else '0s'}"
        )

    def poll(self) -> None:
        """Count the markers that appeared since the last call."""
        try:  # one directory listing per poll, not one stat per tile (cheap on network file systems)
            names = {entry.name for entry in os.scandir(self.workdir / "tiles")}
        except FileNotFoundError:
            names = set()
        finished = [index for index in self.pending if marker_path(self.workdir, index).name in names]
        for index in finished:
            tile = self.pending.pop(index)
            self.done_pairs += tile.pairs
            self.done_tiles += 1
            self.bar.update(tile.pairs)
        if finished:
            self.bar.set_postfix_str(f"{self.done_tiles}/{self.total_tiles} tiles", refresh=False)
            if time.monotonic() - self.last_log >= _LOG_EVERY_SECONDS or not self.pending:
                self._log(self.status())

    def requeue(self, tiles: Sequence[Tile]) -> None:
        """Count these (done, then found corrupt) tiles as pending again."""
        for tile in tiles:
            if tile.index not in self.pending:
                self.pending[tile.index] = tile
                self.done_tiles -= 1
                self.done_pairs -= tile.pairs
                self.start_pairs -= tile.pairs  # the work was done all the same: the rate keeps it
        self._log(f"{len(tiles)} tiles failed their check and are computed again")

    def start(self) -> TileProgress:
        """Poll in a background thread until :meth:`stop` (a second call while it runs does nothing)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self._loop, name="tile-progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        self._log(f"end: {self.status()}, {format_duration(time.monotonic() - self.started)} elapsed")
        self.bar.close()

    def _log(self, message: str) -> None:
        self.last_log = time.monotonic()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
