"""Inference latency, size and accuracy of one classifier in every deployable form: ``python -m bench.inference_latency``.

The trained classifier (``--model``, default: the README main job's best
checkpoint) as:

* the Keras model, called eagerly (``model(x, training=False)``);
* the SavedModel kvision exports, its ``serve_images`` signature (uint8 in);
* TFLite float32, dynamic-range and full-int8 (uint8 I/O), through LiteRT
  with its default XNNPACK delegate;
* ONNX Runtime (CPU provider) on the model converted by ``tf2onnx``, the
  external reference (``pip install -e ".[bench]"``).

Latency: median and p90 over ``--rounds`` interleaved rounds of ``--reps``
calls on 1 image and on a batch of 32, after warm-up. Size: the file (or
SavedModel directory). Accuracy: top-1 on the first ``--eval-size`` test
images of the dataset. int8 is calibrated on 300 training images.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import make_parser, report

INT8_CALIBRATION = 300


def directory_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def artifacts(model, class_names, representative, tmp):
    """``{name: (predict(uint8 images) → logits, size in bytes)}`` for every form of ``model``."""
    import numpy as np
    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from kvision.export.signatures import classifier_archive
    from kvision.export.tflite import TFLiteClassifier, classifier_endpoint, convert

    forms = {}
    model.save(tmp / "model.keras")
    forms["Keras (eager call)"] = (
        lambda x: model(x.astype(np.float32), training=False).numpy(), (tmp / "model.keras").stat().st_size)
    classifier_archive(model, class_names).write_out(str(tmp / "saved_model"), verbose=False)
    serve = tf.saved_model.load(str(tmp / "saved_model")).signatures["serve_images"]
    forms["SavedModel serve_images"] = (
        lambda x: serve(images=tf.constant(x))["logits"].numpy(), directory_size(tmp / "saved_model"))
    for variant in ("float32", "dynamic", "int8"):
        tflite = convert(model, variant, representative_images=representative)
        forms[f"TFLite {variant}"] = (lambda x, m=TFLiteClassifier(tflite): m(x)["logits"], len(tflite))
    # Frozen first: tf2onnx would turn the tensors the preprocessing layer captures into extra inputs.
    function, specs = classifier_endpoint(model)
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda image: function(image)["logits"]).get_concrete_function(*specs))
    onnx_model, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs], opset=17)
    onnx_bytes = onnx_model.SerializeToString()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    forms["ONNX Runtime (tf2onnx)"] = (
        lambda x: session.run(None, {input_name: x.astype(np.float32)})[0], len(onnx_bytes))
    return forms


def latencies(predict, images, reps):
    """``reps`` wall times (seconds) of ``predict(images)`` after 10 warm-up calls."""
    for _ in range(10):
        predict(images)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("inference_latency", __doc__, training=False)
    parser.add_argument("--model", default="runs/fashion_mnist_cnn_fast/checkpoints/best.keras",
                        help="a trained kvision classifier (.keras) (default: %(default)s)")
    parser.add_argument("--dataset", default="fashion_mnist", help="its dataset, for test images (default: %(default)s)")
    parser.add_argument("--data-dir", help="where the dataset is (default: the dataset's usual places)")
    parser.add_argument("--eval-size", type=int, default=2000, help="test images for the accuracy (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=100, help="timed calls per round and batch size (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        parser.error(f"Expected a trained .keras classifier (run python recipes/fashion_mnist.py first). "
                     f"Received: {args.model!r}, which is not a file")
    import keras
    import numpy as np

    from kvision.data import load_dataset

    started = time.time()
    dataset = load_dataset(args.dataset, args.data_dir, download=False)
    images, labels = dataset.test[0][: args.eval_size], dataset.test[1][: args.eval_size]
    model = keras.models.load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        forms = artifacts(model, dataset.class_names, dataset.train[0][:INT8_CALIBRATION], Path(tmp))
        timings = {name: {1: [], 32: []} for name in forms}
        for _ in range(args.rounds):
            for name, (predict, _) in forms.items():
                for batch in (1, 32):
                    timings[name][batch] += latencies(predict, images[:batch], args.reps)
        rows = []
        for name, (predict, size) in forms.items():
            logits = np.concatenate([predict(images[i:i + 32]) for i in range(0, len(images), 32)])
            rows.append({
                "form": name,
                "batch1_median_ms": round(1000 * statistics.median(timings[name][1]), 3),
                "batch1_p90_ms": round(1000 * statistics.quantiles(timings[name][1], n=10)[-1], 3),
                "batch32_median_ms": round(1000 * statistics.median(timings[name][32]), 2),
                "batch32_p90_ms": round(1000 * statistics.quantiles(timings[name][32], n=10)[-1], 2),
                "size_mb": round(size / 1e6, 2),
                "accuracy": f"{np.mean(np.argmax(logits, -1) == labels):.2%}",
            })
    title = f"{args.model} on {len(images)} {args.dataset} test images; {args.rounds} rounds × {args.reps} calls"
    report("inference_latency", argv, started, title,
           [("form", "form"), ("batch1_median_ms", "batch 1 median ms"), ("batch1_p90_ms", "p90"),
            ("batch32_median_ms", "batch 32 median ms"), ("batch32_p90_ms", "p90"), ("size_mb", "MB"),
            ("accuracy", "accuracy")], rows, model=args.model, dataset=args.dataset, eval_size=len(images))


if __name__ == "__main__":
    sys.exit(main())
