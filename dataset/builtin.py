"""The built-in datasets, registered in this one place: ``cubesphere``, ``shapenet`` and ``toy``.

Imported by the ``dataset`` package, so the built-ins are registered as soon as anything of ``dataset`` is. The
factories import their dataset modules when called: registering costs no torch import, which keeps the
``python -m dataset...`` builders and their workers quick to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataset.registry import SplitRequest, register_dataset
from dataset.schema import Key
from dispersion_score.frames import FRAMES

if TYPE_CHECKING:
    from dataset.shapenet.dataset import ShapeNet
    from dataset.synthetic.dataset import CubeSphereDataset
    from dataset.toy import ToyShapesDataset

SHAPENET_SETTINGS: dict[str, Key] = {
    "categories": Key(list, None, "category names or synset ids; null = the ShapeNet-13", nullable=True, item_type=str),
    "images": Key(str, "r2n2", "render set: 3D-R2N2 views or a yaw-limited set", choices=("r2n2", "yaw")),
    "views": Key(int, 1, "R2N2 training views per shape (01..views; test uses view 00)", minimum=1),
    "yaw": Key(int, None, "yaw range r of the training renders (images: yaw)", nullable=True, minimum=0),
    "test_yaw": Key(int, None, "yaw range of the test renders; null = yaw (the paper tests on 90)", nullable=True),
    "frame": Key(str, "object", "target frame: object- or viewer-centred", choices=FRAMES),
    "cache_dir": Key(str, None, "where the normalised-cloud cache lives; null = the default", nullable=True),
}
"""``data.shapenet``: the options of :class:`dataset.shapenet.dataset.ShapeNet` (docs/shapenet.md)."""


def _cubesphere(request: SplitRequest) -> CubeSphereDataset:
    from dataset.synthetic.dataset import cubesphere_split

    return cubesphere_split(request)


def _shapenet(request: SplitRequest) -> ShapeNet:
    from dataset.shapenet.dataset import shapenet_split

    return shapenet_split(request)


def _toy(request: SplitRequest) -> ToyShapesDataset:
    from dataset.toy import toy_split

    return toy_split(request)


register_dataset("cubesphere", _cubesphere)
register_dataset("shapenet", _shapenet, schema=SHAPENET_SETTINGS)
register_dataset("toy", _toy)
