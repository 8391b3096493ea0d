"""What a run writes for TensorBoard, read back with TensorBoard's own reader and plugins."""

import io

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.graph import graphs_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from kvision.errors import ModelError
from kvision.train import fit_classifier
from kvision.train.tensorboard import (confusion_counts, confusion_figure, display_images, hparam_values,
                                       log_test_metrics, parse_profile_batches)
from tests.helpers import TF_KERNELS, quadrant_images, run_on_two_cpus, small_cnn, summary_events as events
from tests.train.tensorboard_checks import assert_engine_board

TRAIN = quadrant_images(64, seed=1)
VAL = quadrant_images(24, seed=2)
NAMES = ["top left", "top right", "bottom left", "bottom/right"]
COMMON = dict(epochs=2, batch_size=16, learning_rate=0.05, schedule="constant", seed=3, verbose=0, class_names=NAMES)
SETTINGS = {"model": "cnn", "epochs": 2, "learning_rate": 0.05, "boundaries": (0.5, 0.75), "cutout": None,
            "augmentation": {"flip": True}, "mixed_precision": False}
def pngs(tensor_event):
    """The images of a ``tf.summary.image`` event (width, height, then PNGs) as uint8 arrays."""
    strings = tf.make_ndarray(tensor_event.tensor_proto)
    return [tf.io.decode_png(png).numpy() for png in strings[2:]]


def plugin_content(accumulator, tag):
    return accumulator.SummaryMetadata(tag).plugin_data.content


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tensorboard") / "quadrants"
    result = fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, hparams=SETTINGS, profile_batches="1,2", **COMMON)
    png = run_dir / "figure.png"
    png.write_bytes(tf.io.encode_png(np.full((4, 6, 3), 200, np.uint8)).numpy())
    log_test_metrics(run_dir / "logs", {"accuracy": 0.75, "macro_f1": 0.5, "files": "not a number"},
                     images={"attention": png}, texts={"test/predictions": "| source | output |"})
    return run_dir / "logs", result


def test_epoch_scalars_and_the_train_step_graph(run):
    logs, result = run
    train = events(logs / "train")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert [event.step for event in train.Tensors(tag)] == [0, 1]
    losses = [float(tf.make_ndarray(event.tensor_proto)) for event in train.Tensors("epoch_loss")]
    np.testing.assert_allclose(losses, result.history["loss"], rtol=1e-5)
    validation = events(logs / "validation")
    accuracies = [float(tf.make_ndarray(event.tensor_proto)) for event in validation.Tensors("epoch_accuracy")]
    np.testing.assert_allclose(accuracies, result.history["val_accuracy"], rtol=1e-5)
    graph = train.Graph()
    ops = {node.op for node in graph.node}
    # The forward pass, its gradients and the optimizer's updates: the train step, not the Keras model's outline.
    assert {"Conv2D", "Conv2DBackpropFilter", "MatMul", "SoftmaxCrossEntropyWithLogits",
            "AssignVariableOp", "AssignAddVariableOp"} <= ops
    assert any("block1_conv1_conv" in node.name for node in graph.node)


def test_the_graphs_dashboard_opens_on_the_op_graph(run):
    """The dashboard selects the run's default graph as an op graph: the 'Malformed GraphDef' of Keras 3 is gone."""
    logs, _ = run
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logs))
    multiplexer.Reload()
    context = base_plugin.TBContext(data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logs)),
                                    multiplexer=multiplexer, logdir=str(logs))
    plugin = graphs_plugin.GraphsPlugin(context)
    from tensorboard import context as request_context

    info = plugin.info_impl(request_context.RequestContext(), "")
    assert info["train"]["run_graph"] is True
    body, mime = plugin.graph_impl(request_context.RequestContext(), "train", None, False, "")
    assert mime == "text/x-protobuf" and "Conv2DBackpropFilter" in body


def test_sample_images_are_the_augmented_training_inputs(run):
    logs, _ = run
    train = events(logs / "train")
    (event,) = train.Tensors("augmented_training_batch")
    images = pngs(event)
    assert len(images) == 16 and all(image.shape == (16, 16, 1) for image in images)
    # The bright quadrant (150 + noise) survives the crop and flip: what the model learns from.
    assert all(image.max() >= 150 for image in images)
    description = train.SummaryMetadata("augmented_training_batch").summary_description
    labels = description.split(": ", 1)[1].split(", ")
    assert len(labels) == 16 and set(labels) <= set(NAMES)


def test_a_confusion_matrix_image_per_epoch_and_pr_curves_per_class(run):
    logs, _ = run
    validation = events(logs / "validation")
    matrices = validation.Tensors("confusion_matrix")
    assert [event.step for event in matrices] == [0, 1]
    (image,) = pngs(matrices[-1])
    assert image.shape[2] == 4 and image.shape[0] >= 400 and 0 < image.mean() < 255
    counts = np.bincount(VAL[1], minlength=4)
    for k, name in enumerate(NAMES):
        tag = f"{name.replace('/', '_')}/pr_curves"
        (event,) = validation.Tensors(tag)
        assert event.step == 1
        tp, fp, tn, fn, precision, recall = tf.make_ndarray(event.tensor_proto)
        assert tp.shape == (201,)
        # At threshold 0 every example is predicted positive: TP = the class's examples, FP = the others.
        assert (tp[0], fp[0], tn[0], fn[0]) == (counts[k], len(VAL[1]) - counts[k], 0, 0)
        assert recall[0] == 1.0


def test_the_hparams_session_holds_the_settings_and_its_end(run):
    logs, result = run
    session = events(logs)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        plugin_content(session, hparams_metadata.SESSION_START_INFO_TAG))
    values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for name, value in start.hparams.items()}
    assert values == {"model": "cnn", "epochs": 2, "learning_rate": 0.05, "boundaries": "0.5,0.75", "cutout": "None",
                      "augmentation.flip": True, "mixed_precision": False}
    assert start.group_name == "quadrants"
    end = hparams_metadata.parse_session_end_info_plugin_data(
        plugin_content(session, hparams_metadata.SESSION_END_INFO_TAG))
    assert end.status == api_pb2.STATUS_SUCCESS
    # The metrics the dashboard shows beside the settings: the last validation epoch and the test numbers.
    evaluation = events(logs / "evaluation")
    assert sorted(evaluation.Tags()["tensors"]) == ["attention", "test/accuracy", "test/macro_f1", "test/predictions"]
    assert {tag: float(tf.make_ndarray(evaluation.Tensors(tag)[0].tensor_proto)) for tag in ("test/accuracy", "test/macro_f1")} \
        == {"test/accuracy": 0.75, "test/macro_f1": 0.5}
    [image] = pngs(evaluation.Tensors("attention")[0])
    assert image.shape == (4, 6, 4) and (image[..., :3] == 200).all()
    assert tf.make_ndarray(evaluation.Tensors("test/predictions")[0].tensor_proto).item() == b"| source | output |"


def test_hparam_values_are_what_the_dashboard_takes():
    from dataclasses import dataclass
    from pathlib import Path

    @dataclass
    class Limits:
        pixels: int = 10
        ratio: float = 2.0

    assert hparam_values({"a": np.float32(0.5), "b": [1, 2], "c": None, "d": Path("/x"), "e": Limits(),
                          "f": {"g": (), "h": "s"}}) == {
        "a": 0.5, "b": "1,2", "c": "None", "d": "/x", "e.pixels": 10, "e.ratio": 2.0, "f.g": "", "f.h": "s"}


def test_confusion_counts_and_figure():
    counts = confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    fig = confusion_figure(counts, ["a", "b", "c"])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    np.testing.assert_array_equal(display_images(np.array([-3.0, 0.4, 254.6, 300.0])), [0, 0, 255, 255])
    np.testing.assert_array_equal(display_images(np.array([-1.0, 0.0, 1.0]), value_range=(-1, 1)), [0, 128, 255])


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), (0, None), ("2", (2, 2)), (3, (3, 3)),
                                             ("1, 4", (1, 4)), ((5, 6), (5, 6)), ([2, 2], (2, 2))])
def test_profile_batches_ranges(value, expected):
    assert parse_profile_batches(value) == expected


@pytest.mark.parametrize("value", ["3,1", "0,2", "a,b", "1,2,3", (1, 2, 3), True, -1])
def test_a_bad_profile_range_is_a_clear_error(value):
    with pytest.raises(ModelError, match=r"Expected profile_batches as 'A,B' .* Received: "):
        parse_profile_batches(value)


def test_a_bad_profile_range_fails_before_training(tmp_path):
    with pytest.raises(ModelError, match="Received: '2,1'"):
        fit_classifier(small_cnn, TRAIN, VAL, run_dir=tmp_path, profile_batches="2,1", **COMMON)
    assert not (tmp_path / "logs").exists()


def test_the_profiler_traces_the_batches_asked_for(run):
    logs, _ = run
    traces = list((logs / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
    graph_tags = events(logs / "train").Tags()["tensors"]
    assert "batch_2" in graph_tags  # Keras' trace of the profiled batches, beside the op graph


STREAM_TWO_REPLICAS = """
from pathlib import Path
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator as ea
from kvision.train import fit_classifier
from tests.data.streams import memory_split
from tests.helpers import EVERYTHING, small_cnn
from tests.train.test_tensorboard import COMMON, TRAIN, VAL, pngs
run_dir = Path(sys.argv[1])
fit_classifier(small_cnn, memory_split(*TRAIN), memory_split(*VAL), run_dir=run_dir, figure_examples=20,
               strategy=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), **{**COMMON, "batch_size": 8})
out = {}
for run in ("train", "validation"):
    accumulator = ea.EventAccumulator(str(run_dir / "logs" / run), size_guidance=EVERYTHING)
    accumulator.Reload()
    out[run] = {tag: [len(pngs(event)) for event in accumulator.Tensors(tag)] for tag in accumulator.Tags()["tensors"]
                if tag in ("augmented_training_batch", "confusion_matrix")}
    if run == "validation":
        event = accumulator.Tensors("top left/pr_curves")[0]
        out["pr_total"] = float(sum(tf.make_ndarray(event.tensor_proto)[:4, 0]))
    else:
        out["graph_ops"] = len(accumulator.Graph().node)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_stream_on_two_replicas_gets_the_same_dashboards(tmp_path):
    """Streamed splits under MirroredStrategy: sample images, a matrix per epoch, PR curves of the capped sample."""
    out = run_on_two_cpus(STREAM_TWO_REPLICAS, tmp_path, env=TF_KERNELS)
    assert out["train"] == {"augmented_training_batch": [16]}
    assert out["validation"] == {"confusion_matrix": [1, 1]}
    assert out["pr_total"] == 20  # figure_examples caps the validation examples predicted
    assert out["graph_ops"] > 100


def test_a_vae_run_gets_the_graph_and_hparams(tmp_path):
    """An engine training through ``fit_run`` (the VAE's; seq2seq's takes the same path): its step's graph holds the
    reparameterisation noise. A one-epoch VAE run costs a fraction of seq2seq's, whose text pipeline alone is
    traced for seconds. The GAN engine, with its own callbacks, is checked on tests/train/test_gan_training.py's run.
    """
    from tests.train.test_vae import decoder_fn, encoder_fn

    from kvision.train.vae import fit_vae
    fit_vae(encoder_fn, decoder_fn, quadrant_images(32, seed=1)[0], quadrant_images(16, seed=2)[0], run_dir=tmp_path,
            epochs=1, batch_size=16, verbose=0, hparams={"engine": "vae", "epochs": 1})
    assert_engine_board(tmp_path / "logs", "vae", "StatelessRandomNormalV2", 1)
