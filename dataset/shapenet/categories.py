"""The ShapeNet-13 categories and their train/test split, shared by readers, renderers and the stand-in.

Categories are the 13 of 3D-R2N2 and AtlasNet, named by the first lemma of ShapeNet's ``taxonomy.json``
(so "loudspeaker", not "speaker"; "vessel", not "watercraft"). The split is per category: the sorted model
ids, the first ``int(0.8 · n)`` for training and the rest for testing (35,021 / 8,762 shapes on the real
ShapeNet-13).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SHAPENET13: dict[str, str] = {
    "02691156": "airplane",
    "02828884": "bench",
    "02933112": "cabinet",
    "02958343": "car",
    "03001627": "chair",
    "03211117": "display",
    "03636649": "lamp",
    "03691459": "loudspeaker",
    "04090263": "rifle",
    "04256520": "sofa",
    "04379243": "table",
    "04401088": "telephone",
    "04530566": "vessel",
}
SPLITS = ("train", "test")
TRAIN_FRACTION = 0.8


def resolve_categories(categories: Iterable[str] | None, names: dict[str, str] | None = None) -> list[str]:
    """Synset ids of ``categories`` (names or synset ids, in the given order; None = the 13, sorted by id).

    Args:
        categories: category names ("chair") or synset ids ("03001627"); None for all of ShapeNet-13.
        names: synset → name table to resolve names with (default :data:`SHAPENET13`; a reader passes the
            names of the dataset's own ``taxonomy.json``).

    Raises:
        ValueError: an unknown name or id (the message lists the known ones), or a repeated category.
    """
    table = SHAPENET13 if names is None else names
    if categories is None:
        return sorted(table)
    if isinstance(categories, str):
        categories = [categories]
    by_name = {name: synset for synset, name in table.items()}
    resolved = []
    for category in categories:
        synset = category if category in table else by_name.get(category)
        if synset is None:
            known = ", ".join(f"{name} ({synset})" for synset, name in sorted(table.items()))
            raise ValueError(f"unknown ShapeNet category {category!r}; known: {known}")
        if synset in resolved:
            raise ValueError(f"category {category!r} is listed twice")
        resolved.append(synset)
    return resolved


def split_ids(ids: Sequence[str], split: str) -> list[str]:
    """The ids of one category that belong to ``split``: sorted, first ``int(0.8 · n)`` train, rest test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    ordered = sorted(ids)
    cut = int(TRAIN_FRACTION * len(ordered))
    return ordered[:cut] if split == "train" else ordered[cut:]
