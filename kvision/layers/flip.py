"""``MirrorImages``: images mirrored left to right, for test-time flip averaging (``kvision.models.flip_averaged``)."""

import keras


@keras.saving.register_keras_serializable(package="kvision")
class MirrorImages(keras.layers.Layer):
    """``(batch, height, width, channels)`` images, each mirrored left to right; the same in training and inference."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape
