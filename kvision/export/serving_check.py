"""Load a SavedModel as TF Serving would, with TensorFlow alone, and call its signatures.

Run as a separate process by ``kvision.export.verify``; it imports nothing
but TensorFlow, NumPy and the op libraries named with ``--import`` (not
kvision, not TF Serving's client library), so the check proves the artifact
needs nothing else:

    python serving_check.py [--import MODULE]... SAVED_MODEL OUT_DIR REQUESTS...

``--import`` names a module that registers ops the graph needs (for text
models, ``tensorflow_text``), imported before loading.

Each ``REQUESTS`` is a pair of files written by ``verify.write_tensor_requests``:
``<stem>.json`` (per request: signature and its inputs' names and dtypes) and
``<stem>.tfrecord`` (the inputs' tensors, ``tf.io.serialize_tensor``, in
that order). Every request is sent to its signature; the numeric outputs go
to ``OUT_DIR/outputs.npz`` (key ``<file>/<record>/<output>``) and a summary
(signature specs, calls, batch-1 latencies, imported packages) to
``OUT_DIR/summary.json``.
"""

import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

LATENCY_REPEATS = 20


def spec_dict(spec):
    return {"dtype": spec.dtype.name, "shape": [d if d is not None else -1 for d in spec.shape.as_list()]}


def signature_specs(loaded):
    specs = {}
    for name, fn in loaded.signatures.items():
        specs[name] = {
            "inputs": {key: spec_dict(spec) for key, spec in fn.structured_input_signature[1].items()},
            "outputs": {key: spec_dict(spec) for key, spec in fn.structured_outputs.items()},
        }
    return specs


def requests(stem):
    index = json.loads(Path(f"{stem}.json").read_text())
    tensors = iter(tf.data.TFRecordDataset(f"{stem}.tfrecord"))
    for request in index:
        inputs = {name: tf.io.parse_tensor(next(tensors), tf.dtypes.as_dtype(dtype)) for name, dtype in request["inputs"]}
        yield request["signature"], inputs


def median_ms(fn, inputs):
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        fn(**inputs)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def main(saved_model, out_dir, *request_stems):
    loaded = tf.saved_model.load(saved_model)
    arrays, calls, latency = {}, [], {}
    for file_index, stem in enumerate(request_stems):
        for record, (signature, inputs) in enumerate(requests(stem)):
            fn = loaded.signatures[signature]
            outputs = fn(**inputs)
            batch = int(next(iter(inputs.values())).shape[0])
            calls.append({"file": file_index, "record": record, "signature": signature, "batch": batch})
            for key, value in outputs.items():
                if value.dtype == tf.string:
                    calls[-1][key] = np.char.decode(value.numpy().astype(bytes), "utf-8").tolist()
                else:
                    arrays[f"{file_index}/{record}/{key}"] = value.numpy()
            if batch == 1 and signature not in latency:
                latency[signature] = median_ms(fn, inputs)
    np.savez(Path(out_dir) / "outputs.npz", **arrays)
    summary = {
        "signatures": signature_specs(loaded),
        "calls": calls,
        "latency_ms_batch1": latency,
        "imported": {name: name in sys.modules for name in ("kvision", "keras", "tensorflow_serving")},
        "tensorflow": tf.__version__,
    }
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    args = sys.argv[1:]
    while args[:1] == ["--import"]:
        importlib.import_module(args[1])
        args = args[2:]
    main(*args)
