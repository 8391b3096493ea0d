"""Time to accuracy of the main job, beside the same training in PyTorch: ``python -m bench.time_to_accuracy``.

Two fresh processes, one after the other, each alone on the machine:

* ``kvision``: the README's main job, ``python recipes/fashion_mnist.py`` with
  its defaults (training, the test evaluation and the verified export); its
  ``history.csv`` gives every epoch's validation accuracy and ``train_seconds``
  (wall time since training started: tracing, validation and callbacks in);
* ``PyTorch``: the same training written by hand in PyTorch eager — the same
  network (built layer by layer from the recipe's Keras model, initialised as
  Keras draws it), the same 55 000/5 000 split and per-channel
  standardisation, random flips, label smoothing, L2 on the conv and dense
  kernels only, SGD with momentum, the same warm-up + cosine schedule stepped
  per batch, the same batch and epochs, 2 threads — timed the same way.

Both evaluate their best-validation epoch's weights once on the test split.
Writes ``bench/results/time_to_accuracy.json`` and ``.png`` (validation
accuracy against training minutes) and prints the table: each set-up's time
to ``--target`` validation accuracy (the end of the first epoch at or above
it), its final and best validation accuracy, test accuracy and wall times,
and its time to target as a ratio of PyTorch's. PyTorch is a benchmark-only
dependency: ``pip install -e ".[bench]"``.
"""

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT, make_parser, report, run_child

NUM_CLASSES = 10
COLUMNS = [("setup", "set-up"), ("epochs", "epochs"), ("time_to_target_s", "time to target, s"),
           ("vs_pytorch", "vs PyTorch"), ("best_val_accuracy", "best val acc"),
           ("test_accuracy", "test acc"), ("train_seconds", "training, s"), ("command_seconds", "whole command, s")]


def recipe_settings(argv=()):
    """The main job's training settings: ``recipes/fashion_mnist.py``'s parsed defaults (and ``argv``)."""
    from kvision.recipes import fashion_mnist  # imports TensorFlow: only in a measured process

    return fashion_mnist.settings(argv)


def run_kvision(work, argv):
    """The main job in a fresh process; ``{"history": rows, "summary": …, "command_seconds": …}``."""
    started = time.time()
    run_child([sys.executable, str(ROOT / "recipes" / "fashion_mnist.py"), "--run-dir", str(work / "run"),
               "--export-dir", str(work / "exports"), "--name", "time_to_accuracy", "--version", "1", *argv])
    seconds = time.time() - started
    report_json = json.loads((work / "run" / "evaluation" / "report.json").read_text())
    with open(work / "run" / "history.csv", newline="") as f:
        history = [{"epoch": int(row["epoch"]) + 1, "val_accuracy": float(row["val_accuracy"]),
                    "train_seconds": float(row["train_seconds"])} for row in csv.DictReader(f)]
    blessed = (work / "exports" / "time_to_accuracy" / "1" / "BLESSED").exists()
    return {"history": history, "test_accuracy": report_json["accuracy"], "command_seconds": round(seconds, 1),
            "blessed": blessed, "settings": json.loads((work / "run" / "config.json").read_text())}


def write_twin_inputs(settings, work):
    """What the PyTorch process needs, written by a TensorFlow process (the two libraries crash in one process).

    ``work/settings.json``: the recipe's parsed settings; ``work/layers.json``:
    the recipe's Keras model as a list of layers (kind, config,
    standardisation statistics, output features); ``work/data.npz``: the
    recipe's split (its seed), uint8 images.
    """
    import numpy as np

    from kvision.data import channel_stats, open_dataset, train_validation_split
    from kvision.models import build

    (work / "settings.json").write_text(json.dumps(vars(settings)))
    dataset = open_dataset("fashion_mnist", download=False)
    (train_x, train_y), (val_x, val_y) = train_validation_split(*dataset.train, settings.validation_size,
                                                                seed=settings.seed)
    mean, std = channel_stats(train_x)
    model = build(settings.model, dataset.image_shape, NUM_CLASSES, mean=mean, std=std)
    layers = []
    for layer in model.layers[1:]:
        entry = {"kind": type(layer).__name__, "name": layer.name, "config": layer.get_config(),
                 "features": math.prod(layer.output.shape[1:])}
        if entry["kind"] == "Normalization":
            entry.update(mean=layer.mean.numpy().ravel().tolist(), variance=layer.variance.numpy().ravel().tolist())
        layers.append(entry)
    (work / "layers.json").write_text(json.dumps({"input_shape": list(dataset.image_shape), "layers": layers},
                                                 default=str))
    np.savez(work / "data.npz", train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
             test_x=dataset.test[0], test_y=dataset.test[1])


def torch_twin(spec):
    """A ``torch.nn.Sequential`` of the sequential Keras classifier ``spec`` describes, initialised as Keras does.

    Conv and dense kernels: Keras' He-normal (a normal truncated at two
    standard deviations, rescaled to keep the variance); the logits'
    Glorot-uniform; zero biases; batch norm with the same momentum and
    epsilon; the standardisation layer's mean and variance.
    """
    import torch
    from torch import nn

    def truncated_he_normal(weight, fan_in):
        std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras' correction for the truncation
        nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)

    class Standardise(nn.Module):
        def __init__(self, mean, variance):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(variance, dtype=torch.float32).view(1, -1, 1, 1).sqrt())

        def forward(self, x):
            return (x - self.mean) / self.std

    modules, channels, features = [], spec["input_shape"][-1], None
    for layer in spec["layers"]:
        kind, config = layer["kind"], layer["config"]
        if kind == "Normalization":
            modules.append(Standardise(layer["mean"], layer["variance"]))
        elif kind == "Rescaling":
            modules.append(Standardise([0.0] * channels, [255.0 ** 2] * channels))
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = config["padding"]
            modules.append(nn.ZeroPad2d((left, right, top, bottom)))
        elif kind == "Conv2D":
            k = config["kernel_size"][0]
            conv = nn.Conv2d(channels, config["filters"], k, stride=config["strides"][0],
                             padding="same" if config["padding"] == "same" else 0, bias=config["use_bias"])
            truncated_he_normal(conv.weight, channels * k * k)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            modules.append(conv)
            channels = config["filters"]
        elif kind.endswith("BatchNormalization"):
            modules.append(nn.BatchNorm2d(channels, eps=config["epsilon"], momentum=1 - config["momentum"]))
        elif kind == "ReLU":
            modules.append(nn.ReLU())
        elif kind == "MaxPooling2D":
            modules.append(nn.MaxPool2d(config["pool_size"][0], config["strides"][0]))
        elif kind == "Dropout":
            modules.append(nn.Dropout(config["rate"]))
        elif kind in ("Flatten", "GlobalMaxPooling2D", "GlobalAveragePooling2D"):
            pool = {"Flatten": nn.Identity(), "GlobalMaxPooling2D": nn.AdaptiveMaxPool2d(1),
                    "GlobalAveragePooling2D": nn.AdaptiveAvgPool2d(1)}[kind]
            modules += [pool, nn.Flatten()]
            features = layer["features"]
        elif kind == "Dense":
            dense = nn.Linear(features, config["units"])
            if layer["name"] == "logits":
                nn.init.xavier_uniform_(dense.weight)
            else:
                truncated_he_normal(dense.weight, features)
            nn.init.zeros_(dense.bias)
            modules.append(dense)
            if config["activation"] == "relu":
                modules.append(nn.ReLU())
            features = config["units"]
        else:
            raise ValueError(f"The PyTorch twin has no counterpart of layer {layer['name']!r} ({kind}).")
    return nn.Sequential(*modules)


def run_torch(settings, work):
    """Train the twin of the recipe's network in PyTorch on ``work``'s files; ``{"history": rows, "test_accuracy": …}``."""
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(settings.seed)
    model = torch_twin(json.loads((work / "layers.json").read_text()))
    with np.load(work / "data.npz") as data:  # NHWC uint8 -> NCHW float32 in 0..255: the model standardises
        arrays = {key: torch.from_numpy(np.ascontiguousarray(data[key].transpose(0, 3, 1, 2))).float()
                  if key.endswith("_x") else torch.from_numpy(data[key]).long() for key in data.files}
    train_x, train_y = arrays["train_x"], arrays["train_y"]
    decayed = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    others = [p for p in model.parameters() if all(p is not d for d in decayed)]
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": settings.weight_decay}, {"params": others}],
                                lr=settings.lr, momentum=settings.momentum)
    steps_per_epoch = len(train_x) // settings.batch_size
    total, warmup = steps_per_epoch * settings.epochs, int(steps_per_epoch * settings.warmup_epochs)

    def rate(step):  # keras.optimizers.schedules.CosineDecay with a linear warm-up, as make_schedule builds it
        if step < warmup:
            return step / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    bfloat16 = settings.mixed_precision == "bfloat16"  # the recipe's mixed precision, as PyTorch's autocast

    def logits(x):
        model.eval()
        with torch.no_grad():
            return torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])

    def accuracy(x, y, tta=False):
        scores = logits(x) + (logits(x.flip(3)) if tta else 0)
        return (scores.argmax(1) == y).float().mean().item()

    history, best, best_state = [], -1.0, None
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(train_x))
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            x, y = train_x[index], train_y[index]
            if settings.flip:
                x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            schedule.step()
        val = accuracy(arrays["val_x"], arrays["val_y"])
        history.append({"epoch": epoch + 1, "val_accuracy": val, "train_seconds": round(time.perf_counter() - start, 3)})
        print(f"PyTorch epoch {epoch + 1}: val_accuracy {val:.4f}, {history[-1]['train_seconds']:.0f} s", flush=True)
        if val > best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {"history": history, "test_accuracy": accuracy(arrays["test_x"], arrays["test_y"], settings.tta == "flip")}


def time_to(history, target):
    """``train_seconds`` at the end of the first epoch whose validation accuracy reaches ``target``, or None."""
    return next((row["train_seconds"] for row in history if row["val_accuracy"] >= target), None)


def plot(results, target, path):
    """Validation accuracy against training minutes, one line per set-up, the target as a dashed line."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=120)
    axes = figure.subplots()
    for name, result in results.items():
        minutes = [row["train_seconds"] / 60 for row in result["history"]]
        axes.plot(minutes, [row["val_accuracy"] for row in result["history"]], marker="o", label=name)
    axes.axhline(target, color="grey", linestyle="--", label=f"target {target:.1%}")
    axes.set(xlabel="training wall time, minutes", ylabel="validation accuracy",
             title="Fashion-MNIST main job: time to accuracy (2 CPU cores)")
    low = min(row["val_accuracy"] for result in results.values() for row in result["history"])
    axes.set_ylim(max(low - 0.005, 0.8), 1.0 if target > 0.97 else target + 0.03)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def rows_of(results, target):
    """One table row per set-up; ``vs_pytorch`` is its time to target over PyTorch's."""
    torch_time = time_to(results["PyTorch"]["history"], target) if "PyTorch" in results else None
    rows = []
    for name, result in results.items():
        history, reached = result["history"], time_to(result["history"], target)
        ratio = f"{reached / torch_time:.2f}x" if reached and torch_time else "—"
        rows.append({"setup": name, "epochs": len(history), "time_to_target_s": reached if reached else "not reached",
                     "vs_pytorch": ratio, "best_val_accuracy": round(max(r["val_accuracy"] for r in history), 4),
                     "test_accuracy": round(result["test_accuracy"], 4),
                     "train_seconds": history[-1]["train_seconds"], "command_seconds": result.get("command_seconds", "—")})
    return rows


def main(argv=None):
    parser = make_parser("time_to_accuracy", __doc__, training=False, setups=("twin_inputs", "torch"))
    parser.add_argument("--target", type=float, default=0.935, help="validation accuracy to reach (default: %(default)s)")
    parser.add_argument("--skip-torch", action="store_true", help="only the kvision run")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("recipe_args", nargs="*", help="extra flags for the recipe (after --), e.g. -- --epochs 4")
    args = parser.parse_args(argv)
    if args.setup == "twin_inputs":  # measured processes: TensorFlow here, PyTorch in the next
        write_twin_inputs(recipe_settings(args.recipe_args), Path(args.work))
        return
    if args.setup == "torch":
        settings = argparse.Namespace(**json.loads((Path(args.work) / "settings.json").read_text()))
        (Path(args.work) / "torch.json").write_text(json.dumps(run_torch(settings, Path(args.work))))
        return
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_torch:  # first: it has more ways to fail than the recipe
            for setup in ("twin_inputs", "torch"):
                run_child([sys.executable, "-m", "bench.time_to_accuracy", "--setup", setup, "--work", tmp, "--",
                           *args.recipe_args])
            results["PyTorch"] = json.loads((work / "torch.json").read_text())
        results = {"kvision": run_kvision(work, args.recipe_args), **results}
    png = ROOT / "bench" / "results" / "time_to_accuracy.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.target, png)
    settings = results["kvision"]["settings"]
    title = (f"Fashion-MNIST main job ({settings['model']}, {settings['epochs']} epochs, batch "
             f"{settings['batch_size']}, test-time augmentation: {settings['tta']}): time to {args.target:.1%} validation accuracy, 2 CPU cores; "
             "curve: bench/results/time_to_accuracy.png")
    report("time_to_accuracy", argv if argv is not None else sys.argv[1:], started, title, COLUMNS,
           rows_of(results, args.target), curves={k: v["history"] for k, v in results.items()},
           blessed=results["kvision"]["blessed"])


if __name__ == "__main__":
    main()
