"""``python -m kvision.evaluate SUBCOMMAND …``: re-score an exported model from its SavedModel alone.

    python -m kvision.evaluate gan --model saved_models/fashion_mnist_dcgan_conditional/3 [--cas]

Subcommands (each has its own ``--help``): gan (``kvision/evaluate/rescore_gan.py``).
"""

import sys

from kvision.evaluate import rescore_gan

COMMANDS = {"gan": rescore_gan.main}


def main(argv=None):
    """Run the subcommand ``argv[0]`` names with the rest of ``argv``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return None
    if not argv or argv[0] not in COMMANDS:
        sys.exit(f"usage: python -m kvision.evaluate {{{','.join(COMMANDS)}}} …\n"
                 f"error: Expected a subcommand among {', '.join(COMMANDS)}. Received: {argv[0] if argv else 'none'}")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
