"""``python -m kvision.export MODEL_PATH --name NAME``: see ``kvision/export/cli.py``."""

from kvision.export.cli import main

if __name__ == "__main__":
    main()
