#!/usr/bin/env python
"""Train the face embedder, as the original script did: `python train.py` trains on ./train
(clean and distorted images) for 20 epochs and saves tb_model.pth. Every `facelib train`
flag works here too; see `python train.py --help`."""

import sys

from facelib.cli import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("train"))
