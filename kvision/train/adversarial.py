"""L∞ adversarial attacks (FGSM, PGD) and adversarial training with PGD examples.

The attacks work on any kvision classifier: raw 0..255 images in, logits out.
``epsilon`` and ``step_size`` are given in units of images scaled to [0, 1],
as the literature states them: ``epsilon=0.1`` lets every pixel move by
0.1 × 255 = 25.5 grey levels. Adversarial images are float32, stay in
[0, 255] and within ``epsilon`` of the input in every pixel.

The attacks are graph code (``tf.while_loop``, no Python control flow on
tensors), so they run inside a Keras ``train_step``, under ``tf.function``,
XLA and ``tf.distribute`` strategies.
"""

import numbers

import keras
import tensorflow as tf

from kvision.models.common import is_positive_int, require


def check_attack(epsilon, steps, step_size):
    """``ModelError`` for a negative ε or step size (Python numbers; tensors are the caller's) or bad ``steps``."""
    for name, value in (("epsilon", epsilon), ("step_size", step_size)):
        if isinstance(value, numbers.Real):
            require(value >= 0, f"{name} is a fraction of the 0..255 range and must be ≥ 0.", **{name: value})
    require(is_positive_int(steps), "steps must be a positive integer.", steps=steps)


def _one_hot(labels, num_classes):
    """float32 one-hot targets from integer class ids ``[B]`` or one-hot ``[B, C]`` labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)


def _ascent_direction(model, images, targets):
    """``sign(∇ₓ cross-entropy)`` per example, with the model in inference mode.

    The backward pass starts from the cross-entropy gradient of the logits,
    ``softmax − target``, rescaled per example to a largest entry of 1. A
    positive per-example factor leaves the sign unchanged, and it keeps
    float16 gradients of confidently classified examples from underflowing
    to zero under mixed precision.
    """
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = tf.cast(model(images, training=False), tf.float32)
    upstream = tf.nn.softmax(logits) - targets
    upstream = tf.math.divide_no_nan(upstream, tf.reduce_max(tf.abs(upstream), axis=-1, keepdims=True))
    return tf.sign(tape.gradient(logits, images, output_gradients=upstream))


def pgd(model, images, labels, epsilon, *, steps=10, step_size=None, random_start=True, seed=None):
    """Projected gradient descent (on the loss: ascent) inside the L∞ ball of radius ``epsilon``.

    From a uniformly random point of the ball (``random_start``), ``steps``
    signed-gradient steps of ``step_size`` on the cross-entropy, each followed
    by projection onto the ball and the valid pixel range (Madry et al. 2018,
    https://arxiv.org/abs/1706.06083). Batch-norm and dropout layers run in
    inference mode.

    Args:
        model: a classifier taking raw 0..255 images and returning logits.
        images: ``[B, H, W, C]`` images in 0..255 (any numeric dtype).
        labels: integer class ids ``[B]`` or one-hot ``[B, C]`` (as the
            engine's pipeline yields them).
        epsilon: radius of the ball, as a fraction of the 0..255 range.
        steps: gradient steps.
        step_size: per step, as a fraction of the 0..255 range; default
            ``2.5 · epsilon / steps``, which lets a path reach the boundary
            from anywhere in the ball (Madry et al.).
        random_start: start at a random point of the ball instead of the input.
        seed: ``None`` (stateful random start), an int, or a ``[2]`` integer
            tensor for ``tf.random.stateless_uniform``.

    Returns:
        float32 adversarial images, in [0, 255] and within ``epsilon · 255``
        of ``images`` in every pixel; ``epsilon = 0`` returns the input.
    """
    check_attack(epsilon, steps, step_size)
    images = tf.cast(images, tf.float32)
    radius = tf.cast(epsilon, tf.float32) * 255.0
    stride = tf.cast(2.5 * epsilon / steps if step_size is None else step_size, tf.float32) * 255.0
    lower, upper = tf.maximum(images - radius, 0.0), tf.minimum(images + radius, 255.0)
    targets = _one_hot(labels, model.output_shape[-1])

    adversarial = images
    if random_start:
        shape = tf.shape(images)
        if seed is None:
            noise = tf.random.uniform(shape, -1.0, 1.0)
        else:
            noise = tf.random.stateless_uniform(shape, tf.cast(tf.broadcast_to(seed, [2]), tf.int64), -1.0, 1.0)
        adversarial = tf.clip_by_value(images + radius * noise, lower, upper)

    def step(i, x):
        x = x + stride * _ascent_direction(model, x, targets)
        return i + 1, tf.clip_by_value(x, lower, upper)

    _, adversarial = tf.while_loop(lambda i, x: i < steps, step, (tf.constant(0), adversarial))
    return tf.stop_gradient(adversarial)


def fgsm(model, images, labels, epsilon):
    """The fast gradient sign method: one step of ``epsilon`` along the sign of the loss gradient.

    Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572. The same as
    ``pgd`` with one step of size ``epsilon`` from the input itself; see
    ``pgd`` for the arguments (``epsilon`` is a fraction of the 0..255 range).
    """
    return pgd(model, images, labels, epsilon, steps=1, step_size=epsilon, random_start=False)


class AdversarialTraining(keras.Model):
    """Trains ``network`` on PGD examples made against its current weights (Madry et al. 2018).

    Each ``train_step`` replaces the batch by its PGD adversarial examples
    (``steps`` steps inside the ε-ball) and takes Keras' own training step
    on them, so the compiled loss, metrics, loss scaling under mixed
    precision and ``tf.distribute`` reductions all apply. The training
    ``loss`` and metrics ``fit`` reports are therefore the adversarial ones;
    evaluation (``test_step``, ``val_*``) is Keras' own, on clean images.
    Checkpoints of ``kvision.train.fit_classifier`` hold ``network`` alone.

    The attack runs the network in inference mode, so its extra passes do
    not move batch-norm statistics or draw dropout masks; the price is a
    weaker attack in the first few hundred steps, while the moving
    statistics still differ from the batch ones.

    Use it as ``fit_classifier(model_fn, train, val, wrap=lambda net:
    AdversarialTraining(net, epsilon=0.1, steps=7))``.

    Args:
        network: a kvision classifier (raw 0..255 images → logits).
        epsilon: radius of the L∞ ball, as a fraction of the 0..255 range.
        steps: PGD steps per batch (the cost of a step is about
            ``steps + 1`` forward and backward passes).
        step_size: PGD step as a fraction of the 0..255 range; default
            ``2.5 · epsilon / steps``.
        random_start: start PGD at a random point of the ball.
    """

    def __init__(self, network, *, epsilon=0.1, steps=7, step_size=None, random_start=True, **kwargs):
        super().__init__(**kwargs)
        check_attack(epsilon, steps, step_size)
        self.network = network
        self.epsilon = float(epsilon)
        self.steps = int(steps)
        self.step_size = step_size
        self.random_start = random_start
        self.built = True  # the network is a built functional model

    def call(self, inputs, training=False):
        """The network's logits for raw 0..255 ``inputs``."""
        return self.network(inputs, training=training)

    def train_step(self, data):
        images, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        adversarial = pgd(
            self.network, images, labels, self.epsilon,
            steps=self.steps, step_size=self.step_size, random_start=self.random_start,
        )
        return super().train_step(keras.utils.pack_x_y_sample_weight(adversarial, labels, sample_weight))
