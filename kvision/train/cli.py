"""Command-line flags every training recipe shares."""


def add_speed_arguments(parser):
    """``--mixed-precision`` and ``--xla``, in a "speed" group of ``parser``."""
    speed = parser.add_argument_group("speed")
    speed.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 compute with dynamic loss scaling (float32 weights and outputs)")
    speed.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile)")
