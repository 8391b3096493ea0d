"""Fraction of the machine's float32 peak that training reaches: ``python -m bench.roofline``.

Peak: the best GFLOP/s of a float32 ``tf.linalg.matmul`` of n×n matrices
(n = 1024, 2048, 4096; 2n³ FLOPs each) in a compiled ``tf.function``.

Achieved: training FLOPs per step ÷ median step time of ``fit_classifier``
(batch 128, 32×32×3). FLOPs are counted analytically per layer: a convolution
costs 2·H_out·W_out·k_h·k_w·C_in·C_out per example forward, a dense layer
2·inputs·outputs; batch norm, activations, pooling and additions are left out
(memory-bound, a few % of the FLOPs). A training step costs 3× the forward
pass (forward, gradients with respect to activations and to weights).
"""

import statistics
import sys
import time

from bench.harness import classifier_step_times, make_parser, report

MODELS = ("cnn", "resnet20", "resnet56")


def matmul_peak_gflops(sizes=(1024, 2048, 4096), seconds=2.0):
    """Best float32 matmul GFLOP/s over ``sizes``, each timed for about ``seconds``."""
    import tensorflow as tf

    best = 0.0
    for n in sizes:
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
        matmul().numpy()
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            matmul().numpy()
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def forward_flops(model):
    """Forward FLOPs per example of ``model``'s convolutions and dense layers (see the module docstring)."""
    import keras
    import numpy as np

    flops = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            flops += 2 * height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return flops


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("roofline", __doc__)
    parser.add_argument("--batch", type=int, default=128, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    from kvision.models import build

    started = time.time()
    peak = matmul_peak_gflops()
    rows = []
    for name in MODELS:
        train_flops = 3 * forward_flops(build(name, (32, 32, 3), 10)) * args.batch
        step = statistics.median(classifier_step_times(name, batch_size=args.batch, steps=args.steps))
        achieved = train_flops / step / 1e9
        rows.append({"model": name, "gflop_per_step": round(train_flops / 1e9, 1), "median_step_ms": round(1000 * step, 1),
                     "achieved_gflops": round(achieved, 1), "of_peak": f"{achieved / peak:.0%}"})
    report("roofline", argv, started, f"float32 matmul peak: {peak:.1f} GFLOP/s, batch {args.batch}",
           [("model", "model"), ("gflop_per_step", "GFLOP/step"), ("median_step_ms", "ms/step"),
            ("achieved_gflops", "GFLOP/s"), ("of_peak", "of peak")], rows, peak_gflops=round(peak, 1), batch=args.batch)


if __name__ == "__main__":
    sys.exit(main())
