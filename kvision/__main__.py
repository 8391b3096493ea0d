"""``python -m kvision …``: the ``kvision`` command (``kvision/cli.py``)."""

import sys

from kvision.cli import main

if __name__ == "__main__":
    sys.exit(main())
