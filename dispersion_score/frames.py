"""The object frame and the viewer frame of a cloud (docs/shapenet.md), and the one rotation between them.

Convention: R_i is item i's world → camera rotation (rows: the camera's axes in world coordinates). A viewer-centred
cloud is the object-frame cloud rotated into the camera, ``viewer = object · R_iᵀ`` (points as rows), so the object
frame is recovered as ``object = viewer · R_i``. Rotations are orthonormal, so no inverse is computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FRAMES = ("object", "viewer")
"""The two frames a cloud can be in: the shape's canonical ("object") frame or its view's camera ("viewer")."""


def to_object_frame(points: Any, rotations: Any) -> np.ndarray:
    """Viewer-centred clouds back to the object frame: ``P_i R_i`` for every item i.

    Args:
        points: (N, P, 3) float clouds, cloud i in item i's viewer (camera) frame.
        rotations: (N, 3, 3) float world → camera rotations R_i of the items' views.

    Returns:
        (N, P, 3) float32 object-frame clouds, computed in float64 (rounded once, to float32, at the end).

    Raises:
        ValueError: ``points`` is not (N, P, 3), or ``rotations`` is not (N, 3, 3) with the same N.
    """
    points = np.asarray(points, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 3:
        raise ValueError(f"points must have shape (N, P, 3), got {points.shape}")
    if rotations.shape != (len(points), 3, 3):
        raise ValueError(f"rotations must have shape ({len(points)}, 3, 3), got {rotations.shape}")
    return np.einsum("npj,njk->npk", points, rotations).astype(np.float32)
