"""``python -m facelib``: the console script."""

import sys

from facelib.cli import main

sys.exit(main())
