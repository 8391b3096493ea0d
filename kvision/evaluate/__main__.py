"""``python -m kvision.evaluate COMMAND [FLAGS]``: re-score an exported model from its SavedModel alone.

    python -m kvision.evaluate g2p --model saved_models/g2p_cmudict/<version>
    python -m kvision.evaluate gan --model saved_models/fashion_mnist_dcgan_conditional/<version> [--cas]

``COMMANDS`` maps each command to a function of its flags (the arguments
after its name); ``python -m kvision.evaluate COMMAND --help`` shows them.
"""

import sys

from kvision.evaluate import rescore_gan
from kvision.evaluate.rescore_seq2seq import g2p_command

COMMANDS = {"g2p": g2p_command, "gan": rescore_gan.main}


def main(argv=None):
    """Run the command ``argv`` names (default: the command line) with the rest of ``argv``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        print("\ncommands:\n" + "\n".join(f"  {name:8} {fn.__doc__.splitlines()[0]}" for name, fn in COMMANDS.items()))
        return None
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"error: Expected a command: {', '.join(COMMANDS)} (--help lists them). "
                         f"Received: {argv[0] if argv else 'none'}")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
