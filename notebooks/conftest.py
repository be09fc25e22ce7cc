"""Notebook runs under pytest (nbval): CPU smoke profile unless told otherwise, never download."""

import os

os.environ.setdefault("FACELIB_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
