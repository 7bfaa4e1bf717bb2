"""The ShapeNet-13 stand-in (docs/shapenet.md): ``parts`` (closed solid primitives), ``families`` (13 part-based
shape families) and ``build`` (``python -m dataset.shapenet.standin``: the dataset in the real file formats)."""
