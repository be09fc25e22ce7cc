"""Stage 2, training: the embedder and its checkpoints, triplet miners, losses, the Trainer and data-parallel
helpers. Imports from :mod:`facelib.data` only (and the shared config/runtime/errors/io)."""
