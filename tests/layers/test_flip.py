"""MirrorImages: a left-right mirror that survives full-integer TFLite conversion."""

import keras
import numpy as np
import tensorflow as tf

from kvision.export.tflite import TFLiteClassifier, convert
from kvision.layers import MirrorImages, preprocess

IMAGES = np.random.default_rng(0).integers(0, 256, (16, 6, 5, 1)).astype("float32")


def test_mirrors_each_image_left_to_right_with_a_known_or_unknown_width():
    layer = MirrorImages()
    np.testing.assert_array_equal(layer(IMAGES), IMAGES[:, :, ::-1])
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec((None, 6, None, 1), tf.float32)])
    np.testing.assert_array_equal(dynamic(IMAGES), IMAGES[:, :, ::-1])


def test_int8_tflite_keeps_the_mirrored_pixels_values():
    """Mirror then standardise, as ``flip_averaged`` feeds a classifier, through the int8 export.

    TFLite's int8 ``REVERSE_V2`` (``keras.ops.flip``) is given an output scale
    and zero point of its own, yet copies its input's bytes unchanged, so
    every mirrored pixel was read on the wrong scale (off by up to 0.63 here).
    The gather keeps its input's quantisation: the int8 model is off by rounding only.
    """
    inputs = keras.Input(shape=IMAGES.shape[1:], name="image")
    model = keras.Model(inputs, preprocess(MirrorImages()(inputs), mean=[72.9], std=[90.0]))
    int8 = TFLiteClassifier(convert(model, "int8", representative_images=IMAGES))
    scale, _ = int8.outputs["logits"]["quantization"]
    np.testing.assert_allclose(int8.logits(IMAGES), model.predict(IMAGES, verbose=0), atol=1.01 * scale)
