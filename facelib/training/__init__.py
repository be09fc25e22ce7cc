"""Stage 3, training: triplet miners, losses, the Trainer and data-parallel helpers. Imports from
:mod:`facelib.data` and :mod:`facelib.models` only (and the shared config/runtime/errors/io)."""
