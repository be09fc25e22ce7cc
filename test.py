#!/usr/bin/env python
"""Evaluate tb_model.pth, as the original script did: `python test.py` scores ./val against
./train by cosine similarity, prints a classification report and saves confusion_matrix.png.
Every `facelib test` flag works here too; see `python test.py --help`."""

import sys

from facelib.cli import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("test"))
