"""DCGAN builders and the GAN model's train_step, EMA and distribution behaviour."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ModelError
from kvision.models import GAN, build
from kvision.models.gan import CONDITIONINGS, _class_loss, _losses
from kvision.train.engine import build_with_policy
from tests.helpers import quadrant_images, run_on_two_cpus


@pytest.mark.parametrize("side", [14, 16, 28, 32, 56, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_every_supported_size_builds_with_the_right_shapes(side, channels, num_classes):
    # Direct calls, not predict(): the shapes are the same without tracing a predict function per network.
    generator = build("dcgan_generator", (side, side, channels), num_classes, latent_dim=16, filters=32)
    discriminator = build("dcgan_discriminator", (side, side, channels), num_classes, filters=8)
    assert [i.name for i in generator.inputs] == (["noise"] if num_classes is None else ["noise", "label"])
    noise = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    labels = np.array([0, 4, 9], np.int32)
    images = generator([noise] if num_classes is None else [noise, labels], training=False).numpy()
    assert images.shape == (3, side, side, channels) and np.all(np.abs(images) <= 1.0)
    logits = discriminator([images] if num_classes is None else [images, labels], training=False).numpy()
    assert logits.shape == (3, 1)
    assert not any(isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)) for layer in discriminator.layers)


@pytest.mark.parametrize("shape", [(30, 30, 1), (28, 32, 1), (7, 7, 1), (28, 28)])
def test_unsupported_image_shapes_are_refused(shape):
    with pytest.raises(ModelError, match=r"7·2\^k or 8·2\^k|image shape \(height, width, channels\)"):
        build("dcgan_generator", shape, None)


def test_networks_round_trip_through_keras_files(tmp_path):
    for network in (
        build("dcgan_generator", (28, 28, 1), 10, latent_dim=8, filters=32),
        build("dcgan_discriminator", (28, 28, 1), 10, filters=8, spectral_norm=True),
    ):
        network.save(tmp_path / "net.keras")
        loaded = keras.saving.load_model(tmp_path / "net.keras")
        inputs = [tf.random.normal((2, 8)), tf.constant([1, 2])] if network.name.endswith("generator") else [
            tf.random.uniform((2, 28, 28, 1), -1, 1), tf.constant([1, 2])]
        np.testing.assert_allclose(loaded(inputs), network(inputs), atol=1e-6)


def test_projection_discriminator_adds_the_class_embedding_dotted_with_the_features():
    """logit(x, y) = ψ(φ(x)) + ⟨V_y, φ(x)⟩ (Miyato & Koyama 2018): changing y moves it by (V_y' − V_y)·φ(x)."""
    keras.utils.set_random_seed(3)
    discriminator = build("dcgan_discriminator", (16, 16, 1), 4, filters=8, conditioning="projection")
    assert [i.name for i in discriminator.inputs] == ["image", "label"] and discriminator.output_shape == (None, 1)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 16, 16, 1)).astype(np.float32)
    features = keras.Model(discriminator.inputs[0], discriminator.get_layer("flatten").output)(images).numpy()
    psi = keras.Model(discriminator.inputs[0], discriminator.get_layer("unconditional_logit").output)(images).numpy()
    embedding = discriminator.get_layer("label_projection").kernel.numpy()  # V: (classes, features)
    assert features.shape == (3, 8 * 8 * 8) and embedding.shape == (4, features.shape[1])
    logits = np.stack([discriminator([images, np.full(3, y, np.int32)]).numpy()[:, 0] for y in range(4)], 1)  # (3, 4)
    np.testing.assert_allclose(logits, psi + features @ embedding.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[:, 2] - logits[:, 0], features @ (embedding[2] - embedding[0]), rtol=1e-4, atol=1e-5)
    assert np.ptp(logits, axis=1).min() > 1e-3, "the label changes the logit"


def test_auxiliary_discriminator_predicts_the_class_and_takes_no_label():
    discriminator = build("dcgan_discriminator", (16, 16, 1), 4, filters=8, conditioning="auxiliary")
    assert [i.name for i in discriminator.inputs] == ["image"]
    assert [tuple(shape) for shape in discriminator.output_shape] == [(None, 1), (None, 4)]
    unconditional = build("dcgan_discriminator", (16, 16, 1), None, filters=8, conditioning="projection")
    assert [i.name for i in unconditional.inputs] == ["image"] and unconditional.output_shape == (None, 1)
    with pytest.raises(ModelError, match="conditioning must be one of concat, projection, auxiliary"):
        build("dcgan_discriminator", (16, 16, 1), 4, conditioning="film")


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_spectral_norm_wraps_every_kernel_and_brings_it_to_unit_spectral_norm(conditioning):
    keras.utils.set_random_seed(0)
    discriminator = build("dcgan_discriminator", (16, 16, 1), 4, filters=8, spectral_norm=True, conditioning=conditioning)
    wrapped = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert not any(isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)) for layer in discriminator.layers)
    heads = {"concat": {"label_map", "logit"}, "projection": {"unconditional_logit", "label_projection"},
             "auxiliary": {"logit", "class_logits"}}
    assert {layer.layer.name for layer in wrapped} == {"down1", *heads[conditioning]}  # 16×16: one strided conv
    initial = {layer.name: np.linalg.norm(layer.layer.kernel.numpy().reshape(-1, layer.layer.kernel.shape[-1]), 2)
               for layer in wrapped}
    assert max(abs(sigma - 1) for sigma in initial.values()) > 0.1, "the initial kernels are not normalised already"
    inputs = [tf.random.uniform((4, 16, 16, 1), -1, 1)] + ([tf.constant([0, 1, 2, 3])] if conditioning != "auxiliary" else [])
    for _ in range(20):  # one power iteration per training call
        discriminator(inputs, training=True)
    for layer in wrapped:
        kernel = layer.layer.kernel.numpy()
        assert np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), 2) == pytest.approx(1.0, abs=0.02), layer.name


def test_spectral_norm_keeps_float32_logits_under_mixed_precision():
    for conditioning in CONDITIONINGS:
        discriminator = build_with_policy(lambda: build("dcgan_discriminator", (16, 16, 1), 4, filters=8,
                                                        spectral_norm=True, conditioning=conditioning), True)
        inputs = [tf.zeros((2, 16, 16, 1))] + ([tf.constant([0, 1])] if conditioning != "auxiliary" else [])
        outputs = tf.nest.flatten(discriminator(inputs, training=True))
        assert discriminator.get_layer("down1_sn").compute_dtype == "float16"
        assert [output.dtype for output in outputs] == [tf.float32] * len(outputs), conditioning


def test_hinge_and_bce_losses_on_known_logits():
    real, fake = tf.constant([[2.0], [0.5], [-1.0]]), tf.constant([[-2.0], [0.5], [1.0]])
    d_loss, g_loss = _losses("hinge", real, fake)
    np.testing.assert_allclose(d_loss[:, 0], [0.0, 0.5 + 1.5, 2.0 + 2.0])  # relu(1 − real) + relu(1 + fake)
    np.testing.assert_allclose(g_loss[:, 0], [2.0, -0.5, -1.0])  # −fake
    d_loss, g_loss = _losses("bce", real, fake)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    np.testing.assert_allclose(d_loss[:, 0], softplus(-real.numpy()[:, 0]) + softplus(fake.numpy()[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(g_loss[:, 0], softplus(-fake.numpy()[:, 0]), rtol=1e-6)
    class_loss = _class_loss(tf.constant([[0.0, 0.0], [10.0, 0.0]]), tf.constant([0, 1]))
    assert class_loss.shape == (2, 1)
    np.testing.assert_allclose(class_loss[:, 0], [np.log(2.0), 10.0 + np.log1p(np.exp(-10.0))], rtol=1e-5)


def make_gan(conditional=True, *, ema_decay=0.9, d_steps=1, loss="bce", dropout=0.0, seed=0, conditioning="concat",
             spectral_norm=False, fake_labels="batch"):
    keras.utils.set_random_seed(seed)
    classes = 4 if conditional else None
    gan = GAN(
        build("dcgan_generator", (16, 16, 1), classes, latent_dim=8, filters=32),
        build("dcgan_discriminator", (16, 16, 1), classes, filters=8, dropout=dropout, conditioning=conditioning,
              spectral_norm=spectral_norm),
        ema_decay=ema_decay, d_steps=d_steps, seed=seed, fake_labels=fake_labels,
    )
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), loss=loss)
    return gan


@pytest.fixture(scope="module")
def batch():
    return quadrant_images(32, size=16)


def d_losses(gan, images, labels, fake):
    """D's mean loss on the real images and on ``fake`` (non-saturating BCE)."""
    real_logits = gan.discriminator([tf.cast(images, tf.float32) / 127.5 - 1, labels], training=False)
    fake_logits = gan.discriminator([fake, labels], training=False)
    return float(tf.reduce_mean(tf.nn.softplus(-real_logits))), float(tf.reduce_mean(tf.nn.softplus(fake_logits)))


def test_one_step_moves_both_networks_the_expected_way_and_the_ema_follows(batch):
    """One traced train step checked for both networks' updates and the EMA generator's; then the EMA's lag."""
    images, labels = batch
    gan = make_gan(ema_decay=0.9)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.05), g_optimizer=keras.optimizers.SGD(0.05))
    labels = tf.constant(labels, tf.int32)
    fake = gan.generator([gan._noise(32, stream=0), labels], training=True)  # the fakes of the step's D update
    d_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    np.testing.assert_array_equal(g_before[0], gan.ema_generator.trainable_weights[0].numpy(), "the EMA starts equal")
    real_before, fake_before = d_losses(gan, images, labels, fake)
    logs = gan.train_on_batch(images, labels, return_dict=True)
    real_after, fake_after = d_losses(gan, images, labels, fake)
    assert real_after < real_before, "after a D step, D's loss on the real images falls"
    assert real_after + fake_after < real_before + fake_before
    assert all(np.any(a != b.numpy()) for a, b in zip(d_before, gan.discriminator.trainable_weights))
    assert all(np.any(a != b.numpy()) for a, b in zip(g_before, gan.generator.trainable_weights))
    assert set(logs) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"}
    assert all(np.isfinite(v) for v in logs.values())
    assert int(gan.d_optimizer.iterations) == int(gan.g_optimizer.iterations) == 1
    for start, raw, ema in zip(g_before, gan.generator.trainable_weights, gan.ema_generator.trainable_weights):
        np.testing.assert_allclose(ema.numpy(), 0.9 * start + 0.1 * raw.numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg="EMA = decay · before + (1 − decay) · raw")
    for _ in range(5):
        gan.train_on_batch(images, labels)
    raw, ema, start = gan.generator.trainable_weights[0].numpy(), gan.ema_generator.trainable_weights[0].numpy(), g_before[0]
    assert np.any(raw != ema), "the average lags the raw weights"
    assert np.abs(ema - raw).mean() < np.abs(start - raw).mean(), "and moves towards them"
    for raw_stat, ema_stat in zip(gan.generator.non_trainable_weights, gan.ema_generator.non_trainable_weights):
        np.testing.assert_array_equal(raw_stat.numpy(), ema_stat.numpy(), "the BN statistics are copied, not averaged")


def test_hinge_loss_d_steps_and_test_step(batch):
    images, labels = batch
    gan = make_gan(conditional=False, loss="hinge", d_steps=2)
    gan.train_on_batch(images)
    assert int(gan.d_optimizer.iterations) == 2 and int(gan.g_optimizer.iterations) == 1
    logs = gan.test_on_batch(images, return_dict=True)
    assert int(gan.d_optimizer.iterations) == 2, "test_step does not train"
    assert logs["d_loss"] >= 0, "the hinge loss of D is non-negative"
    with pytest.raises(ModelError, match="loss must be one of bce, hinge"):
        gan.compile(d_optimizer="adam", g_optimizer="adam", loss="wasserstein")


def test_balanced_fake_labels_cycle_through_the_classes_whatever_the_batch(batch):
    images, labels = batch
    gan = make_gan(fake_labels="balanced", d_steps=2)
    real_labels = tf.zeros(6, tf.int32)  # a batch of one class
    draws = [gan._fake_labels(real_labels, 6, stream).numpy() for stream in range(4)]  # step 0: streams 0..3
    np.testing.assert_array_equal(np.concatenate(draws), np.arange(24) % 4)
    assert all(np.bincount(draw, minlength=4).max() - np.bincount(draw, minlength=4).min() <= 1 for draw in draws)
    gan.train_on_batch(images, labels)
    np.testing.assert_array_equal(gan._fake_labels(real_labels, 6, 0).numpy(), np.arange(24, 30) % 4, "step 1 carries on")
    np.testing.assert_array_equal(make_gan()._fake_labels(real_labels, 6, 0).numpy(), real_labels.numpy(),
                                  "by default the generator is asked for the real batch's classes")


def test_a_projection_hinge_step_lowers_the_discriminator_loss(batch):
    images, labels = batch
    gan = make_gan(conditioning="projection", loss="hinge", spectral_norm=True, fake_labels="balanced")
    gan.compile(d_optimizer=keras.optimizers.SGD(0.05), g_optimizer=keras.optimizers.SGD(0.05), loss="hinge")
    real, labels = tf.cast(images, tf.float32) / 127.5 - 1, tf.constant(labels, tf.int32)
    fake_labels = gan._fake_labels(labels, 32, 0)
    fake = gan.generator([gan._noise(32, stream=0), fake_labels], training=True)  # the fakes of the step's D update

    def hinge():
        real_logits = gan.discriminator([real, labels], training=False)
        fake_logits = gan.discriminator([fake, fake_labels], training=False)
        return float(tf.reduce_mean(tf.nn.relu(1 - real_logits) + tf.nn.relu(1 + fake_logits)))

    gan.discriminator([real, labels], training=True)  # first normalisation of the kernels, as the step does
    before = hinge()
    logs = gan.train_on_batch(images, labels.numpy(), return_dict=True)
    assert hinge() < before and np.isfinite(logs["g_loss"])


def test_acgan_losses_add_the_class_cross_entropy(batch):
    images, labels = batch
    gan = make_gan(conditioning="auxiliary")
    assert gan.auxiliary and not gan.label_input
    real, labels = tf.cast(images, tf.float32) / 127.5 - 1, tf.constant(labels, tf.int32)
    noise = gan._noise(32, stream=0)
    d_loss, g_loss, real_logits, fake_logits = gan._game(real, labels, noise, labels, training=False)
    fake = gan.generator([noise, labels], training=False)
    (_, real_classes), (_, fake_classes) = gan.discriminator(real), gan.discriminator(fake)
    real_ce, fake_ce = (tf.nn.sparse_softmax_cross_entropy_with_logits(labels, c)[:, None] for c in (real_classes, fake_classes))
    np.testing.assert_allclose(d_loss, tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits) + real_ce + fake_ce,
                               rtol=1e-5)
    np.testing.assert_allclose(g_loss, tf.nn.softplus(-fake_logits) + fake_ce, rtol=1e-5)
    logs = gan.train_on_batch(images, labels.numpy(), return_dict=True)
    assert np.isfinite(logs["d_loss"]) and int(gan.g_optimizer.iterations) == 1


def test_a_conditional_generator_needs_a_discriminator_that_uses_the_label():
    generator = build("dcgan_generator", (16, 16, 1), 4, latent_dim=8, filters=32)
    with pytest.raises(ModelError, match="A conditional generator needs a discriminator that takes the label"):
        GAN(generator, build("dcgan_discriminator", (16, 16, 1), None, filters=8))
    with pytest.raises(ModelError, match="fake_labels must be one of batch, balanced"):
        GAN(generator, build("dcgan_discriminator", (16, 16, 1), 4, filters=8), fake_labels="uniform")


PARITY_SCRIPT = """
import numpy as np
from tests.helpers import quadrant_images
from tests.models.test_gan import make_gan

images, labels = quadrant_images(32, size=16)
reference = make_gan()
weights = [n.get_weights() for n in (reference.generator, reference.discriminator, reference.ema_generator)]
runs = []
for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"]):
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        gan = make_gan()
        for network, values in zip((gan.generator, gan.discriminator, gan.ema_generator), weights):
            network.set_weights(values)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(16, drop_remainder=True).take(2)
    history = gan.fit(data, epochs=1, verbose=0).history
    runs.append((history, [w.numpy() for w in gan.generator.weights + gan.ema_generator.weights]))
(one, one_weights), (two, two_weights) = runs
print(json.dumps({
    "losses": [[one[k][0], two[k][0]] for k in ("d_loss", "g_loss")],
    "max_weight_diff": max(float(np.max(np.abs(a - b) / (np.abs(a) + 1e-2))) for a, b in zip(one_weights, two_weights)),
}))
"""


@pytest.mark.slow
def test_one_and_two_devices_give_the_same_training():
    """Same initial weights and global batch under MirroredStrategy on 1 and 2 logical CPUs.

    In its own process: MirroredStrategy objects of one process share collective
    keys, and the synchronized BatchNorm's collectives would meet other tests'.
    """
    result = run_on_two_cpus(PARITY_SCRIPT)
    for one, two in result["losses"]:
        assert two == pytest.approx(one, rel=1e-4)
    assert result["max_weight_diff"] < 1e-3
