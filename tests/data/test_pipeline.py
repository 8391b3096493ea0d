"""make_pipeline and the batch augmentations behind it."""

import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.data.augment import random_crop_with_padding, random_cutout, random_erase, random_flip_left_right
from kvision.errors import DataError


def numbered_images(count, height=8, width=8, channels=3):
    """Images whose pixels are all distinct (within an image), so any shift or flip is visible."""
    base = np.arange(height * width * channels).reshape(height, width, channels) % 200
    return np.stack([base + i for i in range(count)]).astype(np.uint8)


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def two_epochs(dataset):
    return batches(dataset) + batches(dataset)


class PipelineTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.images = numbered_images(20)
        self.labels = np.arange(20, dtype=np.int64) % 10

    def training(self, seed, **options):
        return make_pipeline(self.images, self.labels, batch_size=8, training=True, seed=seed, **options)

    def test_same_seed_gives_identical_batches(self):
        first, second = (
            two_epochs(self.training(seed=7, cutout=3)),
            two_epochs(self.training(seed=7, cutout=3)),
        )
        self.assertLen(first, 4)  # 2 epochs x 2 full batches (the partial batch is dropped)
        for (x1, y1), (x2, y2) in zip(first, second, strict=True):
            self.assertAllEqual(x1, x2)
            self.assertAllEqual(y1, y2)
        # ... while each epoch is shuffled and augmented anew.
        self.assertNotAllEqual(first[0][0], first[2][0])

    def test_different_seed_gives_different_batches(self):
        first, second = batches(self.training(seed=1)), batches(self.training(seed=2))
        self.assertNotAllEqual(first[0][0], second[0][0])

    def test_augmentation_keeps_shape_dtype_and_range(self):
        for x, y in self.training(seed=3, crop_padding=4, cutout=4):
            self.assertEqual(x.shape, (8, 8, 8, 3))
            self.assertEqual(x.dtype, tf.float32)
            self.assertEqual(y.dtype, tf.int64)
            self.assertAllInRange(x, 0.0, 255.0)
            self.assertAllEqual(x, tf.round(x))  # whole pixel values, never interpolated

    def test_every_example_appears_once_per_epoch(self):
        dataset = make_pipeline(
            self.images, np.arange(20), batch_size=5, training=True, seed=0, crop_padding=0, flip=False
        )
        for _ in range(2):
            seen = np.concatenate([y for _, y in batches(dataset)])
            self.assertCountEqual(seen.tolist(), range(20))
            # Without augmentation each image is exactly its own, shuffled.
            self.assertFalse(np.array_equal(seen, np.arange(20)))

    def test_balanced_batches_hold_every_class_equally_often(self):
        labels = np.array([0] * 12 + [1] * 5 + [2] * 3)  # imbalanced: 12, 5, 3
        dataset = make_pipeline(self.images, labels, batch_size=6, training=True, seed=0, crop_padding=0, flip=False,
                                balance_classes=True)
        for _ in range(2):
            result = batches(dataset)
            self.assertEqual(len(result), 3, "an epoch is still len(images) // batch_size batches")
            for images, batch_labels in result:
                self.assertAllEqual(np.bincount(batch_labels, minlength=3), [2, 2, 2])
                for image, label in zip(images, batch_labels):  # each image keeps its own label
                    self.assertEqual(labels[int(image[0, 0, 0]) - int(self.images[0, 0, 0, 0])], label)
            rare = np.concatenate([x for x, y in result])[np.concatenate([y for _, y in result]) == 2]
            self.assertEqual(len(np.unique(rare[:, 0, 0, 0])), 3, "the rare class is repeated, every image of it seen")
        with self.assertRaisesRegex(DataError, "balance_classes reorders training batches only"):
            make_pipeline(self.images, labels, batch_size=6, training=False, balance_classes=True)

    def test_eval_keeps_order_values_and_last_partial_batch(self):
        dataset = make_pipeline(self.images, self.labels, batch_size=8, training=False)
        result = batches(dataset)
        self.assertEqual([len(y) for _, y in result], [8, 8, 4])
        self.assertAllEqual(np.concatenate([x for x, _ in result]), self.images.astype(np.float32))
        self.assertAllEqual(np.concatenate([y for _, y in result]), self.labels)

    def test_one_hot_labels(self):
        _, y = next(
            iter(make_pipeline(self.images, self.labels, batch_size=4, training=False, num_classes=10))
        )
        self.assertEqual(y.dtype, tf.float32)
        self.assertAllEqual(y, tf.one_hot(self.labels[:4], 10))

    def test_drop_remainder_override(self):
        dataset = self.training(seed=0, drop_remainder=False)
        self.assertEqual([len(y) for _, y in batches(dataset)], [8, 8, 4])

    def test_options_for_distribution_and_determinism(self):
        seeded, unseeded = self.training(seed=0).options(), self.training(seed=None).options()
        policy = tf.data.experimental.AutoShardPolicy.DATA
        self.assertEqual(seeded.experimental_distribute.auto_shard_policy, policy)
        self.assertTrue(seeded.deterministic)
        self.assertFalse(unseeded.deterministic)
        evaluation = make_pipeline(self.images, self.labels, batch_size=8, training=False).options()
        self.assertTrue(evaluation.deterministic)
        self.assertEqual(evaluation.experimental_distribute.auto_shard_policy, policy)

    def test_invalid_arguments(self):
        cases = [
            (dict(batch_size=0), r"Expected batch_size to be an int >= 1\. Received: batch_size=0"),
            (dict(batch_size=4, cutout=-1), r"Expected cutout to be an int >= 0\. Received: cutout=-1"),
            (dict(batch_size=4, random_erasing=1.5),
             r"Expected random_erasing to be a probability in \[0, 1\]\. Received: random_erasing=1\.5"),
            (dict(batch_size=4, num_classes=5), r"make_pipeline: expected labels in \[0, 4\]"),
        ]
        for kwargs, message in cases:
            with self.assertRaisesRegex(DataError, message):
                make_pipeline(self.images, self.labels, training=True, **kwargs)
        with self.assertRaisesRegex(
            DataError, r"expected uint8 images of shape \(N, H, W, C\)\. Received: float32"
        ):
            make_pipeline(self.images.astype(np.float32), self.labels, batch_size=4, training=True)


class AugmentTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.images = tf.constant(numbered_images(16, height=10, width=12))

    def test_crop_with_padding_shifts_content(self):
        padding = 2
        out = random_crop_with_padding(self.images, padding, seed=[1, 2]).numpy()
        images = self.images.numpy()
        shifts = []
        for original, cropped in zip(images, out, strict=True):
            # Away from the reflected border, the crop is the original moved by (dy, dx).
            inner = cropped[padding:-padding, padding:-padding]
            found = [
                (dy, dx)
                for dy in range(-padding, padding + 1)
                for dx in range(-padding, padding + 1)
                if np.array_equal(
                    inner, original[padding + dy : 10 - padding + dy, padding + dx : 12 - padding + dx]
                )
            ]
            self.assertLen(found, 1)
            (dy, dx), shifts = found[0], shifts + found
            # The border is the reflection of the image, as np.pad(mode="reflect") makes it.
            padded = np.pad(original, [(padding, padding), (padding, padding), (0, 0)], mode="reflect")
            self.assertAllEqual(
                cropped, padded[padding + dy : padding + dy + 10, padding + dx : padding + dx + 12]
            )
        self.assertGreater(len(set(shifts)), 3)
        self.assertTrue(any(shift != (0, 0) for shift in shifts))

    def test_crop_pads_with_zeros_when_padding_exceeds_image(self):
        tiny = tf.fill([32, 2, 2, 1], tf.constant(9, tf.uint8))
        out = random_crop_with_padding(tiny, 3, seed=[0, 1]).numpy()
        self.assertAllInSet(out, [0, 9])
        self.assertIn(0, out)

    def test_flip_mirrors_about_half_of_the_images(self):
        out = random_flip_left_right(self.images, seed=[3, 4]).numpy()
        images = self.images.numpy()
        flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)]
        kept = [np.array_equal(o, i) for o, i in zip(out, images, strict=True)]
        self.assertTrue(all(f != k for f, k in zip(flipped, kept, strict=True)))
        self.assertTrue(any(flipped) and any(kept))

    def test_cutout_fills_one_square_with_the_mean_colour(self):
        size = 4
        out = random_cutout(self.images, size, seed=[5, 6]).numpy()
        for original, erased in zip(self.images.numpy(), out, strict=True):
            changed = np.any(erased != original, axis=-1)
            rows, cols = np.nonzero(changed)
            self.assertGreater(len(rows), 0)
            self.assertLessEqual(rows.max() - rows.min() + 1, size)
            self.assertLessEqual(cols.max() - cols.min() + 1, size)
            mean = np.round(original.reshape(-1, 3).mean(axis=0))
            self.assertAllEqual(erased[rows, cols], np.broadcast_to(mean, (len(rows), 3)))

    def test_random_erasing_replaces_one_rectangle_by_noise_with_the_papers_sizes(self):
        height, width, count = 28, 28, 600
        images = tf.fill([count, height, width, 1], tf.constant(7, tf.uint8))  # noise shows as values other than 7
        out = random_erase(images, 0.5, seed=[3, 4]).numpy()[..., 0]
        erased = [np.nonzero(image != 7) for image in out]
        erased = [(rows, cols) for rows, cols in erased if len(rows)]
        self.assertBetween(len(erased) / count, 0.43, 0.57)  # probability 0.5
        areas, aspects, noise = [], [], []
        for (rows, cols), image in zip(erased, out[[bool(np.any(o != 7)) for o in out]], strict=True):
            tall, wide = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            box = image[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
            self.assertLessEqual(np.sum(box == 7), 2 + box.size / 64, "one solid rectangle of noise (1/256 draws a 7)")
            areas.append(tall * wide / (height * width))
            aspects.append(tall / wide)
            noise.extend(box.ravel())
        # Share of the area uniform in [0.02, 0.4], aspect log-uniform in [0.3, 3.33]; rounding to whole pixels.
        self.assertBetween(min(areas), 0.005, 0.04)
        self.assertBetween(max(areas), 0.3, 0.45)
        self.assertBetween(np.median(areas), 0.15, 0.25)
        self.assertBetween(min(aspects), 0.25, 0.5)
        self.assertBetween(max(aspects), 2.0, 3.9)
        self.assertBetween(np.mean(noise), 120, 135)  # uniform noise over 0..255
        self.assertEqual(np.max(noise), 255)

    def test_random_erasing_always_or_never_and_reproducible(self):
        images = tf.constant(numbered_images(64, height=28, width=28, channels=1))
        always = random_erase(images, 1.0, seed=[1, 1]).numpy()
        changed = np.any(always != images.numpy(), axis=(1, 2, 3))
        self.assertGreaterEqual(changed.mean(), 0.95, "ten attempts nearly always find a rectangle that fits")
        self.assertAllEqual(always, random_erase(images, 1.0, seed=[1, 1]))
        self.assertNotAllEqual(always, random_erase(images, 1.0, seed=[1, 2]))
        self.assertAllEqual(random_erase(images, 0.0, seed=[1, 1]), images)

    def test_pipeline_erases_only_training_batches(self):
        images = np.full((32, 12, 12, 1), 7, np.uint8)
        labels = np.zeros(32, np.int64)
        plain = dict(batch_size=32, seed=0, crop_padding=0, flip=False)
        trained = next(iter(make_pipeline(images, labels, training=True, random_erasing=1.0, **plain)))[0].numpy()
        evaluated = next(iter(make_pipeline(images, labels, training=False, random_erasing=1.0, **plain)))[0].numpy()
        self.assertGreater(np.mean(np.any(trained != 7, axis=(1, 2, 3))), 0.9)
        self.assertAllEqual(evaluated, images.astype(np.float32))
