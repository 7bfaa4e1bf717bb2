"""Datasets (docs/datasets.md): the contract every split meets (:mod:`dataset.contract`), the registry
(:mod:`dataset.registry`; the built-ins are registered by :mod:`dataset.builtin`, imported here), the dataset
families (``synthetic``, ``shapenet``, ``toy``) and what their builds share (``build``, ``locations``)."""

import dataset.builtin  # noqa: F401  (registers the built-in datasets)
