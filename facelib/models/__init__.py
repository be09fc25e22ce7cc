"""Stage 2, models: the embedder (network, spec, the input transform its spec prescribes, the evaluation-time flip
test) and its checkpoints, used by training, evaluation and recognition alike. Imports from :mod:`facelib.data`
only (and the shared config/runtime/errors/io)."""
