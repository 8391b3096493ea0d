"""FusedBatchNormalization: the numbers of Keras' batch norm, from TensorFlow's fused kernel."""

import keras
import numpy as np
import tensorflow as tf

from kvision.layers import FusedBatchNormalization
from kvision.models import build


def _pair(shape, **options):
    """A Keras and a fused batch norm with the same random gamma/beta, built for ``shape``."""
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **options)
    fused_bn = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **options)
    keras_bn.build(shape)
    fused_bn.build(shape)
    rng = np.random.default_rng(1)
    keras_bn.set_weights([rng.normal(size=w.shape).astype("float32") for w in keras_bn.get_weights()[:2]]
                         + keras_bn.get_weights()[2:])
    fused_bn.set_weights(keras_bn.get_weights())
    return keras_bn, fused_bn


def _train_pass(layer, x):
    """Outputs, gradients of a non-linear loss (inputs, gamma, beta) and the moving statistics after one pass."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.sin(y))
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [y, *grads, layer.moving_mean, layer.moving_variance]


class FusedBatchNormalizationTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (16, 8, 8, 5)).astype("float32"))

    def test_training_pass_matches_keras(self):
        keras_bn, fused_bn = _pair(self.x.shape)
        for expected, actual in zip(_train_pass(keras_bn, self.x), _train_pass(fused_bn, self.x)):
            self.assertAllClose(expected, actual, rtol=1e-5, atol=1e-5)
        # The statistics moved away from their initial 0 / 1, by the biased batch moments.
        mean, variance = tf.nn.moments(self.x, axes=[0, 1, 2])
        self.assertAllClose(fused_bn.moving_mean, 0.1 * mean, rtol=1e-5)
        self.assertAllClose(fused_bn.moving_variance, 0.9 + 0.1 * variance, rtol=1e-5)

    def test_inference_is_keras_own_code(self):
        keras_bn, fused_bn = _pair(self.x.shape)
        keras_bn(self.x, training=True)  # statistics off their initial values
        fused_bn.set_weights(keras_bn.get_weights())
        self.assertAllEqual(keras_bn(self.x, training=False), fused_bn(self.x, training=False))

    def test_frozen_layer_normalises_with_moving_statistics_and_keeps_them(self):
        _, fused_bn = _pair(self.x.shape)
        fused_bn.trainable = False
        before = [w.numpy() for w in fused_bn.weights]
        self.assertAllEqual(fused_bn(self.x, training=True), fused_bn(self.x, training=False))
        for old, new in zip(before, fused_bn.weights):
            self.assertAllEqual(old, new)

    def test_cases_the_kernel_does_not_cover_fall_back_to_keras(self):
        x2d = tf.reshape(self.x, (-1, 5))
        for shape, x, options in (
            (x2d.shape, x2d, {}),  # not 4-D
            (self.x.shape, self.x, {"axis": 1}),  # not channels-last
            (self.x.shape, self.x, {"synchronized": True}),
            (self.x.shape, self.x, {"center": False, "scale": False, "renorm": True}),
        ):
            keras_bn, fused_bn = _pair(shape, **options)
            self.assertAllEqual(keras_bn(x, training=True), fused_bn(x, training=True))
            self.assertAllEqual(keras_bn.moving_variance, fused_bn.moving_variance)

    def test_without_center_and_scale(self):
        keras_bn, fused_bn = _pair(self.x.shape, center=False, scale=False)
        self.assertAllClose(keras_bn(self.x, training=True), fused_bn(self.x, training=True), atol=1e-5)

    def test_mixed_precision_keeps_float32_statistics_and_float16_outputs(self):
        keras_bn, fused_bn = _pair(self.x.shape, dtype="mixed_float16")
        x = tf.cast(self.x, "float16")
        expected, actual = keras_bn(x, training=True), fused_bn(x, training=True)
        self.assertEqual(actual.dtype, tf.float16)
        self.assertAllClose(expected, actual, atol=2e-3)
        self.assertEqual(fused_bn.moving_mean.dtype, "float32")
        self.assertAllClose(keras_bn.moving_variance, fused_bn.moving_variance, rtol=1e-4)

    def test_bfloat16_trains_through_the_kernel_like_keras(self):
        """bfloat16 in and out of the kernel, float32 statistics: Keras' numbers to bfloat16 rounding."""
        keras_bn, fused_bn = _pair(self.x.shape, dtype="mixed_bfloat16")
        x = tf.cast(self.x, "bfloat16")
        expected, actual = _train_pass(keras_bn, x), _train_pass(fused_bn, x)
        self.assertEqual(actual[0].dtype, tf.bfloat16)
        self.assertEqual(fused_bn.moving_mean.dtype, "float32")
        for want, got in zip(expected, actual):
            self.assertAllClose(tf.cast(want, "float32"), tf.cast(got, "float32"), rtol=2e-2, atol=5e-2)


def test_model_with_fused_batch_norm_round_trips_through_a_keras_file(tmp_path):
    model = build("resnet20", (32, 32, 3), 10)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model(x, training=True)  # move the statistics off their initial values
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("stem_bn")) is FusedBatchNormalization
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))
