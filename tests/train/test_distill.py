"""Distiller: the Hinton et al. loss, exactly; checkpoints of the student; precision, replicas, teacher checks."""


import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.train import apply_weight_decay, fit_classifier
from kvision.train.distill import Distiller, load_teacher
from tests.helpers import quadrant_images, run_on_two_cpus, small_cnn

TRAIN = quadrant_images(128, seed=1)
VAL = quadrant_images(64, seed=2)
# No TensorBoard figures: tests/train/test_tensorboard.py checks them.
DETERMINISTIC = dict(crop_padding=0, flip=False, seed=3, figure_examples=0, verbose=0)
COMMON = dict(batch_size=32, learning_rate=0.05, schedule="constant", **DETERMINISTIC)


def tiny_student():
    return small_cnn(filters=(4, 8), dense_units=16, dropout=0.0, dense_dropout=0.0)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A small CNN trained for a few epochs: its best checkpoint."""
    run_dir = tmp_path_factory.mktemp("teacher")
    result = fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, epochs=4, **COMMON)
    assert max(result.history["val_accuracy"]) >= 0.9, "the teacher must know the quadrants"
    return result.best_checkpoint


def numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def distiller_loss(distiller, images, labels):
    """The training loss the distiller computes on one batch (inference-mode logits, so no dropout noise)."""
    x = images.astype("float32")
    y = keras.ops.one_hot(labels, 4)
    student_logits = distiller(x, training=False)
    loss = distiller.compute_loss(x, y, student_logits, training=True)
    return float(loss), keras.ops.convert_to_numpy(student_logits)


def test_alpha_one_trains_exactly_like_the_hard_labels_alone(tmp_path, teacher_file):
    plain = fit_classifier(small_cnn, TRAIN, run_dir=tmp_path / "plain", epochs=2, **COMMON)
    distilled = fit_classifier(
        small_cnn, TRAIN, run_dir=tmp_path / "distilled", epochs=2,
        wrap=lambda student: Distiller(student, load_teacher(teacher_file), alpha=1.0), **COMMON,
    )
    assert plain.history["loss"] == distilled.history["loss"]
    for a, b in zip(plain.model.get_weights(), distilled.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_alpha_zero_loss_is_t_squared_kl_of_the_softened_outputs(teacher_file):
    teacher = load_teacher(teacher_file)
    distiller = Distiller(tiny_student(), teacher, temperature=3.0, alpha=0.0)
    distiller.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    images, labels = TRAIN[0][:16], TRAIN[1][:16]
    loss, student_logits = distiller_loss(distiller, images, labels)

    teacher_log_p = numpy_log_softmax(teacher.predict(images.astype("float32"), verbose=0) / 3.0)
    student_log_p = numpy_log_softmax(student_logits / 3.0)
    kl = np.sum(np.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    assert kl.min() > 0.01, "an untrained student disagrees with the teacher"
    np.testing.assert_allclose(loss, 9.0 * kl.mean(), rtol=1e-5)


def test_alpha_mixes_the_two_targets_and_keeps_weight_decay_whole(teacher_file):
    teacher = load_teacher(teacher_file)
    student = tiny_student()
    apply_weight_decay(student, 1e-2)
    hard_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    images, labels = TRAIN[0][:16], TRAIN[1][:16]
    losses = {}
    for alpha in (0.0, 0.3, 1.0):
        distiller = Distiller(student, teacher, temperature=2.0, alpha=alpha)
        distiller.compile(optimizer="sgd", loss=hard_loss)
        losses[alpha], student_logits = distiller_loss(distiller, images, labels)
    regularisation = float(sum(student.losses))
    hard = float(hard_loss(keras.ops.one_hot(labels, 4), student_logits))
    assert regularisation > 0.01 and hard > 0.1
    np.testing.assert_allclose(losses[1.0], hard + regularisation, rtol=1e-5)
    soft = losses[0.0] - regularisation
    np.testing.assert_allclose(losses[0.3], 0.3 * hard + 0.7 * soft + regularisation, rtol=1e-5)


def test_the_run_checkpoints_and_returns_the_student_which_learns_the_teacher(tmp_path, teacher_file):
    teacher = load_teacher(teacher_file)
    result = fit_classifier(
        tiny_student, TRAIN, VAL, run_dir=tmp_path, epochs=6,
        wrap=lambda student: Distiller(student, load_teacher(teacher_file), alpha=0.0), **COMMON,
    )
    student_params = tiny_student().count_params()
    assert student_params < teacher.count_params() / 2
    assert result.model.count_params() == student_params, "the result is the student, not the wrapper"
    best = keras.saving.load_model(result.best_checkpoint)
    assert best.count_params() == student_params
    for a, b in zip(best.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Taught by the teacher's outputs alone (alpha=0), the student predicts as it does.
    images = VAL[0].astype("float32")
    agreement = np.mean(
        np.argmax(best.predict(images, verbose=0), -1) == np.argmax(teacher.predict(images, verbose=0), -1)
    )
    assert agreement >= 0.9
    assert max(result.history["val_accuracy"]) >= 0.9


def test_mixed_precision_distillation(tmp_path, teacher_file):
    result = fit_classifier(
        tiny_student, TRAIN, run_dir=tmp_path, epochs=2, mixed_precision=True,
        wrap=lambda student: Distiller(student, load_teacher(teacher_file), alpha=0.5), **COMMON,
    )
    assert result.model.get_layer("block1_conv1_conv").compute_dtype == "float16"
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    losses = result.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]


REPLICA_SCRIPT = """
import numpy as np
from kvision.train import fit_classifier, get_strategy
from kvision.train.distill import Distiller, load_teacher
from kvision.train.prune import MagnitudePruning, prunable_kernels
from tests.helpers import quadrant_images, small_cnn

teacher_file, run_dir = sys.argv[1:]
runs = {}
for devices, batch_size in ((["/cpu:0"], 16), (["/cpu:0", "/cpu:1"], 8)):
    result = fit_classifier(
        lambda: small_cnn(filters=(4, 8), dense_units=16, batch_norm=False, dropout=0.0, dense_dropout=0.0),
        quadrant_images(128, seed=1), run_dir=f"{run_dir}/{len(devices)}", epochs=2, batch_size=batch_size,
        learning_rate=0.05, schedule="constant", crop_padding=0, flip=False, seed=3, figure_examples=0, verbose=0,
        strategy=get_strategy(devices), wrap=lambda student: Distiller(student, load_teacher(teacher_file), alpha=0.3),
        callbacks=[MagnitudePruning(0.5, end_step=8, frequency=2)],
    )
    runs[len(devices)] = {
        "loss": result.history["loss"],
        "kernels": {name: k.numpy().tolist() for name, k in prunable_kernels(result.model).items()},
    }
print(json.dumps(runs))
"""


@pytest.mark.slow
def test_two_replicas_distil_and_prune_like_one_device(tmp_path, teacher_file):
    """The soft-target loss is averaged over the global batch like the hard one, and the pruning masks are
    mirrored: 2 replicas follow 1 device's loss curve and prune the same weights.

    In its own process: MirroredStrategy objects of one process share collective keys, which other tests'
    strategies would meet.
    """
    runs = run_on_two_cpus(REPLICA_SCRIPT, teacher_file, tmp_path)
    one, two = runs["1"], runs["2"]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    for name, kernel in one["kernels"].items():
        one_pruned, two_pruned = np.array(kernel) == 0, np.array(two["kernels"][name]) == 0
        assert abs(two_pruned.sum() - round(0.5 * two_pruned.size)) <= 1, name
        assert np.mean(one_pruned == two_pruned) >= 0.99, name


def test_a_teacher_of_other_classes_or_shapes_is_refused(tmp_path, teacher_file):
    student = tiny_student()
    with pytest.raises(ModelError, match="predict the student's classes. Received: teacher_classes=3, student_classes=4"):
        Distiller(student, small_cnn(num_classes=3))
    with pytest.raises(ModelError, match="take the student's input shape"):
        Distiller(student, small_cnn(input_shape=(32, 32, 1)))
    with pytest.raises(ModelError, match="Expected a teacher predicting 10 classes. Received: .* with 4 outputs"):
        load_teacher(teacher_file, num_classes=10)
    with pytest.raises(ModelError, match="alpha must be in"):
        Distiller(student, load_teacher(teacher_file), alpha=1.5)


def test_load_teacher_explains_a_wrong_file(tmp_path):
    with pytest.raises(ModelError, match="saved as a .keras file. Received: .*missing.keras"):
        load_teacher(tmp_path / "missing.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="Expected a Keras model in the teacher file"):
        load_teacher(tmp_path / "broken.keras")
    inputs = keras.Input((16, 16, 1))
    keras.Model(inputs, keras.layers.Dense(4, name="scores")(keras.layers.Flatten()(inputs))).save(
        tmp_path / "plain.keras"
    )
    with pytest.raises(ModelError, match="final layer named 'logits'"):
        load_teacher(tmp_path / "plain.keras")
