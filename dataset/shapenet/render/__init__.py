"""Rendering ShapeNet-layout meshes (docs/rendering.md): ``renderer`` (the headless CPU mesh renderer) and
``yaw_sets`` (``python -m dataset.shapenet.render``: yaw-limited render sets)."""
