"""The ShapeNet camera (docs/shapenet.md): one convention for every reader, renderer and viewer-centred target.

World frame: the ShapeNetCore.v1 OBJ frame (Y up, front +X). Angles are in degrees.

* Camera centre: θ = azimuth, φ = elevation, d = 1.75 · distance ratio,
  C = d · (cos φ cos θ, sin φ, cos φ sin θ); the camera looks at the origin with no roll.
* Rotation (world → camera): rows X̂, Ŷ, Ẑ with Ẑ = C / |C|, X̂ = (0, 1, 0) × Ẑ normalised, Ŷ = Ẑ × X̂;
  in closed form R = [[sin θ, 0, −cos θ], [−sin φ cos θ, cos φ, −sin φ sin θ], [cos φ cos θ, sin φ, cos φ sin θ]].
  The camera looks along −Ẑ; X̂ points to the image's right and Ŷ up (Blender's camera convention, which
  3D-R2N2 and the original yaw renders used).
* Intrinsics: a 35 mm lens on a 32 mm sensor, f = 35/32 · W pixels, principal point at the image centre
  (horizontal field of view 2·atan(16/35) = 49.13°).
* Viewer-centred (VC) points: P Rᵀ (rotation only, applied to unit-ball-normalised clouds); back to the object
  frame: P_vc R.

Metadata files (the formats are facts of the public data; readers elsewhere only split on whitespace):

* 3D-R2N2 ``rendering_metadata.txt``: one line per view, 5 numbers: azimuth, elevation, in-plane rotation
  (always 0), distance ratio, and a literal 25 that is NOT the field of view.
* Yaw-limited ``rendering_metadata.txt``: one line of 10 numbers
  ``azimuth elevation 0 ratio 35 32 1.75 0.0 0.0 0.0`` (lens mm, sensor mm, base distance, three zeros), and
  ``rendering_metadata_disn.txt``: the same ten values as ``[a,b,...,j], `` (DISN's layout).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASE_DISTANCE = 1.75
LENS_MM = 35.0
SENSOR_MM = 32.0
R2N2_LITERAL = 25  # the fifth R2N2 column: a constant, not the field of view
R2N2_COLUMNS = 5
YAW_COLUMNS = 10


@dataclass(frozen=True)
class View:
    """One camera of docs/shapenet.md.

    Attributes:
        azimuth: θ in degrees (0 or 360 = frontal view, looking at the object's +X side).
        elevation: φ in degrees above the XZ plane.
        distance_ratio: the camera is ``BASE_DISTANCE · distance_ratio`` from the origin.
        in_plane: in-plane rotation in degrees; always 0 in the data this project reads and writes.
    """

    azimuth: float
    elevation: float
    distance_ratio: float
    in_plane: float = 0.0

    @property
    def distance(self) -> float:
        """Distance of the camera centre from the origin, ``1.75 · distance_ratio``."""
        return BASE_DISTANCE * self.distance_ratio

    def rotation(self) -> np.ndarray:
        """(3, 3) float64 world → camera rotation R (see :func:`camera_rotation`)."""
        return camera_rotation(self.azimuth, self.elevation)

    def centre(self) -> np.ndarray:
        """(3,) float64 camera centre in the world frame (see :func:`camera_centre`)."""
        return camera_centre(self.azimuth, self.elevation, self.distance_ratio)


def camera_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """World → camera rotation of docs/shapenet.md in closed form.

    Args:
        azimuth: θ in degrees.
        elevation: φ in degrees; |φ| < 90 (at ±90 the "up" direction is undefined).

    Returns:
        (3, 3) float64 R with rows X̂ (image right), Ŷ (image up), Ẑ (from the origin towards the camera);
        orthonormal with det +1. VC points are ``P @ R.T``.

    Raises:
        ValueError: non-finite angles or |elevation| >= 90.
    """
    _check_angles(azimuth, elevation)
    theta, phi = math.radians(azimuth), math.radians(elevation)
    st, ct, sp, cp = math.sin(theta), math.cos(theta), math.sin(phi), math.cos(phi)
    return np.array(
        [
            [st, 0.0, -ct],
            [-sp * ct, cp, -sp * st],
            [cp * ct, sp, cp * st],
        ],
        dtype=np.float64,
    )


def camera_centre(azimuth: float, elevation: float, distance_ratio: float) -> np.ndarray:
    """Camera centre C = 1.75 · ratio · (cos φ cos θ, sin φ, cos φ sin θ), (3,) float64, world units."""
    _check_angles(azimuth, elevation)
    if not (math.isfinite(distance_ratio) and distance_ratio > 0):
        raise ValueError(f"distance_ratio must be a positive finite number, got {distance_ratio!r}")
    theta, phi = math.radians(azimuth), math.radians(elevation)
    d = BASE_DISTANCE * distance_ratio
    return d * np.array([math.cos(phi) * math.cos(theta), math.sin(phi), math.cos(phi) * math.sin(theta)])


def focal_length_pixels(image_size: int) -> float:
    """Pinhole focal length f = 35/32 · W in pixels for a W×W image (149.84 at 137, 245 at 224)."""
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    return LENS_MM / SENSOR_MM * image_size


def field_of_view_degrees() -> float:
    """Horizontal (and vertical) field of view, 2·atan(16/35) = 49.13°."""
    return math.degrees(2.0 * math.atan(SENSOR_MM / 2.0 / LENS_MM))


def project(points: np.ndarray, view: View, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points into a W×W image.

    Args:
        points: (P, 3) world (object-frame) coordinates.
        view: the camera.
        image_size: W = H in pixels.

    Returns:
        uv: (P, 2) float64 pixel coordinates, u to the right and v down, (0, 0) the top-left corner of the
        top-left pixel (pixel (row i, column j) covers u in [j, j + 1), v in [i, i + 1));
        depth: (P,) float64 distance along the viewing direction (positive in front of the camera).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (P, 3), got {points.shape}")
    camera = (points - view.centre()) @ view.rotation().T
    depth = -camera[:, 2]
    f = focal_length_pixels(image_size)
    half = image_size / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = half + f * camera[:, 0] / depth
        v = half - f * camera[:, 1] / depth
    return np.stack([u, v], axis=1), depth


def to_viewer_frame(points: np.ndarray, view: View) -> np.ndarray:
    """Object-frame points → viewer-centred points, ``P Rᵀ`` (rotation only), same dtype as ``points``."""
    rotation = view.rotation().astype(np.asarray(points).dtype, copy=False)
    return np.asarray(points) @ rotation.T


# --------------------------------------------------------------------------------------------- sampling


def sample_r2n2_views(rng: np.random.Generator, count: int = 24) -> list[View]:
    """3D-R2N2's sampling: azimuth U[0, 360), elevation U[25, 30), distance ratio U[0.65, 0.95)."""
    views = []
    for _ in range(count):
        azimuth, elevation, ratio = rng.uniform(0.0, 360.0), rng.uniform(25.0, 30.0), rng.uniform(0.65, 0.95)
        views.append(View(float(azimuth), float(elevation), float(ratio)))
    return views


def sample_yaw_view(rng: np.random.Generator, yaw_range: float) -> View:
    """The original yaw-limited sampling (docs/rendering.md): azimuth 360 + U[−r, r), elevation 20 + U[0, 10),
    distance ratio 0.65 + U[0, 0.35). ``yaw_range`` = r in degrees (0 gives the frontal azimuth 360)."""
    if not (math.isfinite(yaw_range) and 0.0 <= yaw_range <= 180.0):
        raise ValueError(f"yaw range must be in [0, 180] degrees, got {yaw_range!r}")
    azimuth = 360.0 + rng.uniform(-yaw_range, yaw_range) if yaw_range > 0 else 360.0
    elevation = 20.0 + rng.uniform(0.0, 10.0)
    ratio = 0.65 + rng.uniform(0.0, 0.35)
    return View(float(azimuth), float(elevation), float(ratio))


# --------------------------------------------------------------------------------------------- metadata


def _number(value: float) -> str:
    # 12 significant digits: Python 2's str(float), which the R2N2 and original render scripts wrote.
    return f"{value:.12g}"


def format_r2n2_line(view: View) -> str:
    """One line of 3D-R2N2's ``rendering_metadata.txt``: ``azimuth elevation 0 ratio 25`` (no newline)."""
    return " ".join([_number(view.azimuth), _number(view.elevation), "0", _number(view.distance_ratio),
                     str(R2N2_LITERAL)])  # fmt: skip


def yaw_metadata_values(view: View) -> list[float]:
    """The ten values of a yaw-limited metadata line: az, el, 0, ratio, 35, 32, 1.75, 0, 0, 0."""
    return [view.azimuth, view.elevation, 0.0, view.distance_ratio, LENS_MM, SENSOR_MM, BASE_DISTANCE, 0.0, 0.0, 0.0]


def format_yaw_line(view: View) -> str:
    """The yaw-limited ``rendering_metadata.txt`` line (no newline)."""
    values = yaw_metadata_values(view)
    return " ".join([_number(values[0]), _number(values[1]), "0", _number(values[3]), "35", "32", "1.75",
                     "0.0", "0.0", "0.0"])  # fmt: skip


def format_disn_line(view: View) -> str:
    """The ``rendering_metadata_disn.txt`` content: ``[a,b,...,j], `` with the ten yaw values."""
    return "[" + ",".join(_number(v) for v in yaw_metadata_values(view)) + "], "


class MetadataError(ValueError):
    """A camera metadata file that cannot be read (the message names the file and line)."""


def _parse_numbers(line: str, path: os.PathLike | str, line_number: int) -> list[float]:
    try:
        values = [float(token) for token in line.split()]
    except ValueError:
        raise MetadataError(f"{path}, line {line_number}: not a list of numbers: {line.strip()!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise MetadataError(f"{path}, line {line_number}: non-finite value in {line.strip()!r}")
    return values


def _view_from(values: Sequence[float], path: os.PathLike | str, line_number: int) -> View:
    azimuth, elevation, in_plane, ratio = values[:4]
    if not ratio > 0:
        raise MetadataError(f"{path}, line {line_number}: distance ratio must be > 0, got {ratio!r}")
    if abs(elevation) >= 90.0:
        raise MetadataError(f"{path}, line {line_number}: elevation must be in (-90, 90), got {elevation!r}")
    return View(azimuth, elevation, ratio, in_plane)


def read_r2n2_metadata(path: str | os.PathLike) -> list[View]:
    """Parse 3D-R2N2's ``rendering_metadata.txt`` (5 numbers per line, blank lines ignored).

    Returns:
        One :class:`View` per line, in file order (line i is the camera of ``i:02d.png``).

    Raises:
        FileNotFoundError: no such file.
        MetadataError: a line without exactly 5 numbers, or with an impossible camera (names file and line).
    """
    path = Path(path)
    text = _read_text(path)
    views = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = _parse_numbers(line, path, number)
        if len(values) != R2N2_COLUMNS:
            raise MetadataError(
                f"{path}, line {number}: expected {R2N2_COLUMNS} numbers (azimuth elevation in-plane ratio 25), "
                f"got {len(values)}"
            )
        views.append(_view_from(values, path, number))
    if not views:
        raise MetadataError(f"{path} holds no camera line")
    return views


def read_yaw_metadata(path: str | os.PathLike) -> View:
    """Parse a yaw-limited ``rendering_metadata.txt`` (one line of 10 numbers) or a
    ``rendering_metadata_disn.txt`` (``[a,b,...,j], ``); the format is told from the brackets.

    Raises:
        FileNotFoundError: no such file.
        MetadataError: not exactly one line of 10 numbers (names the file).
    """
    path = Path(path)
    text = _read_text(path).strip()
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]*)\]\s*,?\s*", text)
        if match is None:
            raise MetadataError(f"{path}: expected one DISN line '[a,b,...,j], ', got {text[:80]!r}")
        text = match.group(1).replace(",", " ")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise MetadataError(f"{path}: expected one line of {YAW_COLUMNS} numbers, got {len(lines)} lines")
    values = _parse_numbers(lines[0], path, 1)
    if len(values) != YAW_COLUMNS:
        raise MetadataError(f"{path}, line 1: expected {YAW_COLUMNS} numbers, got {len(values)}")
    return _view_from(values, path, 1)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"camera metadata file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"cannot read camera metadata {path}: {error}") from None


def _check_angles(azimuth: float, elevation: float) -> None:
    if not (math.isfinite(azimuth) and math.isfinite(elevation)):
        raise ValueError(f"azimuth and elevation must be finite, got {azimuth!r}, {elevation!r}")
    if abs(elevation) >= 90.0:
        raise ValueError(f"elevation must be in (-90, 90) degrees, got {elevation!r}")
