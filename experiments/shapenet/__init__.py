"""The paper's three ShapeNet experiments: ``declaration`` (more_imgs, more_shapes, nviews), ``figures`` (drawn
from their tables) and the command ``python -m experiments.shapenet`` (``__main__``)."""
