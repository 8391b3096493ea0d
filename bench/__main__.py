"""Every benchmark, then BENCHMARKS.md from their results: ``python -m bench``.

Runs the benchmarks one after another (about 25 minutes on 2 cores), each in
its own process with its default arguments, and writes ``BENCHMARKS.md`` at
the repository root: the machine, the date, and each benchmark's command,
wall time and table, read back from ``bench/results/*.json``. ``--no-run``
only rewrites BENCHMARKS.md from the results already there (for instance
after re-running one benchmark by hand).
"""

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.harness import RESULTS, ROOT

# (module, its results file, its arguments) in the order of BENCHMARKS.md; inference_latency also gets --model.
BENCHMARKS = (
    ("train_throughput", "train_throughput", ()),
    ("optimisations", "optimisations_resnet20", ()),
    ("profile_step", "profile_step_resnet20", ()),
    ("profile_step", "profile_step_resnet20_keras_bn", ("--keras-batch-norm",)),
    ("pipeline_headroom", "pipeline_headroom", ()),
    ("input_throughput", "input_throughput", ()),
    ("stream_memory", "stream_memory", ()),
    ("roofline", "roofline", ()),
    ("inference_latency", "inference_latency", ()),
    ("scaling", "scaling_resnet20", ()),
    ("startup", "startup", ()),
)
PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "torch", "torchvision", "onnxruntime", "tf2onnx")


def machine():
    """One line describing this machine and the versions that matter."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    system = next((line.split("=", 1)[1].strip('"') for line in Path("/etc/os-release").read_text().splitlines()
                   if line.startswith("PRETTY_NAME")), platform.platform())
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return (f"{os.cpu_count()} × {cpu} CPU cores, {memory_kb / 2**20:.0f} GiB, no GPU, {system}, "
            f"Python {platform.python_version()}; {', '.join(versions)}")


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(heading for _, heading in columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(str(row[key]) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def render():
    """BENCHMARKS.md from ``bench/results``; benchmarks without results are listed as not run."""
    sections = []
    for module, name, flags in BENCHMARKS:
        summary = importlib.import_module(f"bench.{module}").__doc__.split("\n\n")[0]
        heading = " ".join([module, *flags])
        path = RESULTS / f"{name}.json"
        if not path.exists():
            sections.append(f"## {heading}\n\n{summary}\n\nNot run yet: `python -m bench.{heading}`.")
            continue
        result = json.loads(path.read_text())
        minutes, seconds = divmod(result["wall_seconds"], 60)
        sections.append(
            f"## {heading}\n\n{summary}\n\n`{result['command']}` — {result['date']}, {minutes} min {seconds} s wall. "
            f"{result['title']}.\n\n{markdown_table(result['columns'], result['rows'])}"
        )
    text = (
        "# Benchmarks\n\n"
        "Written by `python -m bench` (all benchmarks, then this file; `python -m bench --no-run` only rewrites it).\n"
        "Each figure is a ratio or a median measured in one run on this machine; see each script's docstring for\n"
        "what exactly is timed, and the README's [Benchmarks](README.md#benchmarks) for what the figures mean.\n\n"
        f"Machine: {machine()}.\n\n" + "\n\n".join(sections) + "\n"
    )
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/fashion_mnist_cnn_fast/checkpoints/best.keras",
                        help="the trained classifier for inference_latency (default: %(default)s)")
    parser.add_argument("--no-run", action="store_true", help="only rewrite BENCHMARKS.md from bench/results")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.no_run and not (ROOT / args.model).is_file():  # checked now, not after the other benchmarks
        parser.error(f"Expected a trained .keras classifier for inference_latency (run python recipes/fashion_mnist.py "
                     f"first, or pass --model). Received: {args.model!r}, which is not a file")
    if not args.no_run:
        for module, _, flags in BENCHMARKS:
            model = ["--model", args.model] if module == "inference_latency" else []
            subprocess.run([sys.executable, "-m", f"bench.{module}", *flags, *model], cwd=ROOT, check=True)
    render()


if __name__ == "__main__":
    sys.exit(main())
