"""`python -m realtime ...`: the `denoise` command, for environments without the console script."""

from realtime.cli import main

raise SystemExit(main())
