"""facelib: face recognition by deep metric learning (triplet loss on a timm embedder)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
