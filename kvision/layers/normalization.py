"""``FusedBatchNormalization``: Keras' batch norm, trained with TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` computes a training step's statistics and the
normalisation as separate ops (``moments``, then ``x·a + b``), and their
gradients as a dozen more. TensorFlow's ``FusedBatchNormV3`` does the forward
pass in one kernel and the backward pass in another (oneDNN on CPU, cuDNN on
GPU). Only the training pass differs: inference, and every case the fused
kernel does not cover (masks, renorm, synchronized statistics, other than
channels-last 4-D inputs), is Keras' own code.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kvision")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training pass is one fused kernel.

    Same weights, same config, same results to float rounding: the moving
    statistics are updated with the biased batch variance, as Keras does.
    """

    def _fusable(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        # Statistics in float32 under mixed precision, as Keras keeps them. bfloat16 goes to the kernel as it is
        # (its float32 statistics, ``U``, are the kernel's own), saving a cast each way in both passes;
        # float16 is cast, as Keras does.
        x = inputs if inputs.dtype == tf.bfloat16 else tf.cast(inputs, "float32")
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        outputs, mean, unbiased_variance = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, data_format="NHWC", is_training=True,
        )[:3]
        # The kernel reports the Bessel-corrected variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = unbiased_variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)
