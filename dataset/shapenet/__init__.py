"""The ShapeNet-13 family (docs/shapenet.md): ``categories`` (the 13 categories and the split), ``layout`` (where
the files live), ``camera`` (the one camera convention), ``mesh`` (textured meshes), ``cache`` (memory-mapped
split clouds), ``dataset`` (the torch dataset, split accessors and the data check, ``python -m dataset.shapenet``),
``standin`` (the stand-in built in the real formats) and ``render`` (yaw-limited render sets)."""
