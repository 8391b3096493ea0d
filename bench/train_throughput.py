"""Training throughput of ResNet-20 against a plain Keras script and PyTorch: ``python -m bench.train_throughput``.

One training step of ResNet-20 (CIFAR variant, option-A shortcuts, 0.27M
parameters), batch 128 of 32×32×3, SGD with momentum 0.9, in five set-ups,
each in fresh processes, interleaved over ``--rounds`` rounds:

* ``kvision``: ``fit_classifier`` as the recipes run it (the tf.data pipeline
  with random crop and flip, L2 weight decay, the run callbacks);
* ``kvision --xla``: the same with the step compiled by XLA;
* ``plain Keras``: the same architecture (kvision's builder, with Keras'
  own ``BatchNormalization`` as a hand-written script would have) compiled by
  hand and fed ``model.fit`` NumPy arrays — no augmentation, no callbacks;
* ``PyTorch eager`` and ``PyTorch torch.compile``: the same architecture
  written in PyTorch, fed pre-made tensors (no augmentation).

A step's time is the interval between consecutive steps after a first,
untimed epoch (tracing, compilation). Images/s = batch ÷ median step time;
the last column is each set-up's throughput divided by kvision's. PyTorch is
a benchmark-only dependency: ``pip install -e ".[bench]"``.
"""

import json
import os
import sys
import time
from pathlib import Path

from bench.harness import (
    THROUGHPUT_COLUMNS,
    classifier_step_times,
    interleave,
    keras_step_timer,
    make_parser,
    report,
    script_command,
    synthetic_images,
    throughput_rows,
    use_keras_batch_norm,
)

SETUPS = {
    "kvision": "kvision",
    "kvision --xla": "kvision_xla",
    "plain Keras": "keras",
    "PyTorch eager": "torch",
    "PyTorch torch.compile": "torch_compile",
}
NUM_CLASSES = 10


def kvision_step_times(model, batch, steps, xla=False, callbacks=()):
    """Step times of ``fit_classifier`` training ``model`` as the CIFAR-10 recipe does (crop, flip, weight decay)."""
    return classifier_step_times(model, batch_size=batch, steps=steps, optimizer="sgd", learning_rate=0.1,
                                 momentum=0.9, weight_decay=1e-4, crop_padding=4, flip=True, xla=xla,
                                 callbacks=callbacks)


def run_plain_keras(args):
    import keras

    from kvision.models import build

    use_keras_batch_norm()
    images, labels = synthetic_images(args.batch * args.steps)
    model = build("resnet20", (32, 32, 3), NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = keras_step_timer()
    model.fit(images.astype("float32"), labels, batch_size=args.batch, epochs=2, callbacks=[timer], verbose=0)
    return timer.times


def torch_resnet20(width=16, blocks_per_stage=3):
    """ResNet-20 for CIFAR in PyTorch, layer for layer as ``kvision.models.build_cifar_resnet`` (option A)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.stride, self.extra_channels = stride, cout - cin

        def forward(self, x):
            residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            skip = x[:, :, :: self.stride, :: self.stride]  # option A: subsample, zero-pad channels
            if self.extra_channels:
                skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra_channels))
            return F.relu(residual + skip)

    layers, cin = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()], width
    for stage in range(3):
        for block in range(blocks_per_stage):
            cout = width * 2**stage
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, NUM_CLASSES)]
    return torch.nn.Sequential(*layers)


def run_torch(args, compiled):
    import torch

    torch.manual_seed(0)
    images, labels = synthetic_images(args.batch * args.steps)
    batches = [
        (torch.from_numpy(images[i:i + args.batch]).permute(0, 3, 1, 2).float().div(255.0),
         torch.from_numpy(labels[i:i + args.batch]).long())
        for i in range(0, len(images), args.batch)
    ]
    model = torch_resnet20().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    forward = torch.compile(model) if compiled else model
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for epoch in range(2):
        last = time.perf_counter()
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(forward(x), y).backward()
            optimizer.step()
            now = time.perf_counter()
            if epoch > 0:
                times.append(now - last)
            last = now
    return times


def measure(args):
    """Run ``args.setup`` here and write its step times to ``args.out``."""
    run = {
        "kvision": lambda: kvision_step_times("resnet20", args.batch, args.steps),
        "kvision_xla": lambda: kvision_step_times("resnet20", args.batch, args.steps, xla=True),
        "keras": lambda: run_plain_keras(args),
        "torch": lambda: run_torch(args, compiled=False),
        "torch_compile": lambda: run_torch(args, compiled=True),
    }[args.setup]
    Path(args.out).write_text(json.dumps(run()))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("train_throughput", __doc__, interleaved=True, setups=SETUPS.values())
    parser.add_argument("--batch", type=int, default=128, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.setup:
        return measure(args)

    def command(setup):
        return lambda out: script_command("train_throughput.py", "--setup", setup, "--batch", args.batch,
                                          "--steps", args.steps, "--out", out)

    started = time.time()
    times = interleave({name: command(setup) for name, setup in SETUPS.items()}, args.rounds)
    title = f"ResNet-20, batch {args.batch}, {args.rounds} rounds × {args.steps} timed steps, {os.cpu_count()} CPU cores"
    report("train_throughput", argv, started, title, THROUGHPUT_COLUMNS, throughput_rows(times, args.batch),
           batch=args.batch)


if __name__ == "__main__":
    sys.exit(main())
