"""Validation during training: embed the validation folder with the model being trained and score it with
the protocol :func:`~facelib.evaluation.protocols.detect_protocol` picks (``closed`` when the validation
identities are training identities, with the clean training photos as gallery; else ``cross-photo``).

A :class:`Validation` is a :class:`facelib.training.trainer.Callback`: :func:`facelib.jobs.train` gives it to the
Trainer (an earlier stage, which never imports this module), which calls it after each epoch on rank 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelib.data.folders import scan_folder
from facelib.evaluation.extract import embed_folder
from facelib.evaluation.protocols import detect_protocol, run_protocol
from facelib.evaluation.ranking import check_gallery_mode

if TYPE_CHECKING:
    from facelib.training.trainer import Trainer


class Validation:
    """``Validation(val_data, ...)(trainer, entry)`` -> ``{"val_top1", "val_macro_f1", "val_protocol",
    "val_gallery"}`` for the model being trained. ``gallery="mean"`` (the default: one mean embedding per identity,
    cheap per epoch) or ``"all"`` (every image, the lab notes' primary figure); the training log names it."""

    def __init__(self, val_data: str, workers: int = 2, amp: bool = True, batch_size: int = 64,
                 gallery: str = "mean"):
        self.folder = scan_folder(val_data)
        self.workers, self.amp, self.batch_size = workers, amp, batch_size
        self.gallery = check_gallery_mode(gallery)

    def describe(self) -> str:
        """One line for the training log."""
        return "validation: " + self.folder.report.summary().splitlines()[0]

    def __call__(self, trainer: Trainer, entry: dict[str, Any] | None = None) -> dict[str, Any]:
        """Scores ``trainer.model`` (with its ``spec``, training ``folder`` and ``device``); ``entry``, the epoch's
        history entry, is not needed."""
        model, spec, train_folder = trainer.model, trainer.spec, trainer.folder
        protocol, _ = detect_protocol(train_folder.identities, self.folder.identities)
        kw = dict(batch_size=self.batch_size, workers=self.workers, device=trainer.device, amp=self.amp)
        probes = embed_folder(model, spec, self.folder, **kw)
        gallery = None
        if protocol == "closed":
            gallery = embed_folder(model, spec, train_folder.select(lambda s: s.is_clean), **kw)
        result = run_protocol(protocol, probes, train=gallery, gallery=self.gallery)
        return {"val_top1": float(result.top1), "val_macro_f1": float(result.macro_f1), "val_protocol": protocol,
                "val_gallery": self.gallery}
