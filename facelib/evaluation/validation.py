"""Validation during training: embed the validation folder with the model being trained and score it with
the protocol :func:`~facelib.evaluation.protocols.detect_protocol` picks (``closed`` when the validation
identities are training identities, with the clean training photos as gallery; else ``cross-photo``).

The Trainer (an earlier stage) receives a :class:`Validation` from :func:`facelib.jobs.train` and calls it
after each epoch on rank 0; it never imports this module.
"""

from __future__ import annotations

from typing import Any

import torch

from facelib.data.folders import FaceFolder, scan_folder
from facelib.evaluation.extract import embed_folder
from facelib.evaluation.protocols import detect_protocol, run_protocol
from facelib.models.network import EmbeddingNet, ModelSpec


class Validation:
    """``Validation(val_data, workers, amp)(model, spec, train_folder, device)`` ->
    ``{"val_top1", "val_macro_f1", "val_protocol", "val_gallery"}``: scored with the gallery of each identity's
    mean embedding (``gallery="mean"``, cheap per epoch), so the training log names it; ``facelib test`` and the
    lab notes' primary figure use the gallery of all images."""

    gallery_mode = "mean"

    def __init__(self, val_data: str, workers: int = 2, amp: bool = True, batch_size: int = 64):
        self.folder = scan_folder(val_data)
        self.workers, self.amp, self.batch_size = workers, amp, batch_size

    def describe(self) -> str:
        """One line for the training log."""
        return "validation: " + self.folder.report.summary().splitlines()[0]

    def __call__(self, model: EmbeddingNet, spec: ModelSpec, train_folder: FaceFolder,
                 device: torch.device) -> dict[str, Any]:
        protocol, _ = detect_protocol(train_folder.identities, self.folder.identities)
        kw = dict(batch_size=self.batch_size, workers=self.workers, device=device, amp=self.amp)
        probes = embed_folder(model, spec, self.folder, **kw)
        gallery = None
        if protocol == "closed":
            gallery = embed_folder(model, spec, train_folder.select(lambda s: s.is_clean), **kw)
        result = run_protocol(protocol, probes, train=gallery, gallery=self.gallery_mode)
        return {"val_top1": float(result.top1), "val_macro_f1": float(result.macro_f1), "val_protocol": protocol,
                "val_gallery": self.gallery_mode}
