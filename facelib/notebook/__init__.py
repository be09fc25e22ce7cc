"""Helpers for the teaching notebooks in ``notebooks/`` (the library itself does not need them).

One module per concept: :mod:`~facelib.notebook.setup` (profile, data and run folders),
:mod:`~facelib.notebook.tables` (a printable table), :mod:`~facelib.notebook.dataset` (01: the data
set), :mod:`~facelib.notebook.toys` (02: toy geometry and the collapse demo),
:mod:`~facelib.notebook.batches` (02/03: one real P x K batch), :mod:`~facelib.notebook.live`
(03: live training plot), :mod:`~facelib.notebook.evaluation` (04) and
:mod:`~facelib.notebook.recognition` (05: strangers against a gallery). Every public name is
re-exported here, so a notebook writes ``from facelib import notebook as nb``.
"""

from facelib.notebook.batches import embed_batch, pk_batch
from facelib.notebook.dataset import (
    distortion_grid_figure,
    folder_tree,
    framing_figure,
    identity_overlap,
    image_grid_figure,
    image_properties,
    photos_per_identity_figure,
    split_table,
)
from facelib.notebook.evaluation import (
    choose_thresholds,
    classification_table,
    cmc_figure,
    cross_photo_scores,
    ensure_checkpoint,
    pixel_verification,
    protocol_table,
    split_by_identity,
    threshold_table,
)
from facelib.notebook.live import LivePlot, run_training
from facelib.notebook.recognition import open_set_figure, stranger_accept_by_size
from facelib.notebook.setup import (
    NotebookSetup,
    check_pretrained,
    device_summary,
    pretrained_available,
    repo_root,
    setup,
)
from facelib.notebook.tables import Table
from facelib.notebook.toys import (
    collapse_figure,
    collapse_run,
    difficulty_histogram_figure,
    mining_figure,
    mining_table,
    toy_batch,
    toy_clusters,
    toy_embedder,
    toy_training,
    toy_training_figure,
    triplet_diagram_figure,
    triplet_parts,
)

__all__ = [
    "repo_root", "setup", "NotebookSetup", "pretrained_available", "check_pretrained", "device_summary", "Table",
    "folder_tree", "split_table", "photos_per_identity_figure", "distortion_grid_figure", "framing_figure",
    "image_properties", "identity_overlap", "image_grid_figure", "pk_batch", "embed_batch", "toy_batch",
    "triplet_parts",
    "mining_table", "triplet_diagram_figure", "mining_figure", "difficulty_histogram_figure", "toy_training",
    "toy_training_figure", "toy_clusters", "toy_embedder", "collapse_run", "collapse_figure", "LivePlot",
    "run_training", "ensure_checkpoint", "protocol_table", "classification_table", "pixel_verification",
    "split_by_identity", "choose_thresholds", "threshold_table", "cmc_figure", "cross_photo_scores",
    "stranger_accept_by_size", "open_set_figure",
]
