"""`python -m realtime ...`: the `denoise` command, for environments without the console script."""

import sys

from realtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
