"""Stage 4, evaluation: embedding extraction, the one search (retrieval) and ranking, metrics, protocols and
their typed results, the pixel baseline, the ``test`` report and its figures. Imports from data and models."""
