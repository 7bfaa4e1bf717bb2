"""The networks of the original release (Zhou et al., YefanZhou/dispersion-score) as this project's models.

``bash download/download_checkpts.sh`` puts the released runs in ``log/train_synthetic`` (48 synthetic
AtlasNet runs), ``log/more_imgs`` (21 yaw-range runs) and ``log/more_shapes`` (24 OC/VC runs)::

    from models.original import list_original_runs, load_original_run, original_image

    for run in list_original_runs("log"):                    # settings only, no weights read
        print(run.name, run.kind, run.cluster_size, run.seed, run.network, run.mode)
    model, run = load_original_run(run.run_dir, device="cuda")   # eval mode, weights converted and checked
    points = model.predict(images)                           # (B, run.predicted_points, 3); images RGB [0, 1]
    record = run.record()                                    # settings + provenance ("original release")

The converted model is the original's computation: same weights and BatchNorm statistics, the original's
regular templates (PyMesh's icosphere, the square grids), PSGN's point order, ResNet-18 with ``AvgPool2d(7)``
(224×224 input), and, for the synthetic runs, which were trained on BGR images, a channel reversal inside
the model so that it takes RGB images like every other model here (``rgb_input=False`` turns it off).
"""

from models.original.convert import OriginalCheckpointError, build_compatible_model, load_converted_state
from models.original.load import load_original_run, original_image
from models.original.runs import (
    CHECKPOINT_ARCHIVES,
    DEFAULT_RUN_ROOTS,
    EXPERIMENTS,
    ORIGINAL_SYNTHETIC_ROOT,
    OriginalRun,
    OriginalRunError,
    describe_original_run,
    list_original_runs,
)

__all__ = [
    "CHECKPOINT_ARCHIVES",
    "DEFAULT_RUN_ROOTS",
    "EXPERIMENTS",
    "ORIGINAL_SYNTHETIC_ROOT",
    "OriginalCheckpointError",
    "OriginalRun",
    "OriginalRunError",
    "build_compatible_model",
    "describe_original_run",
    "list_original_runs",
    "load_converted_state",
    "load_original_run",
    "original_image",
]
