"""``python -m sciclr`` = the ``sciclr`` command (what torchrun starts for each DDP worker)."""

import sys

from sciclr.cli import main

sys.exit(main())
