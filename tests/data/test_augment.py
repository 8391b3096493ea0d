"""SimCLR's batch augmentation: the two views, colour jitter, the resized crop and the blur, pinned to their numbers."""

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.augment import gaussian_blur, random_resized_crop, simclr_augment, simclr_views
from tests.helpers import quadrant_images


@pytest.mark.parametrize("channels", [1, 3])
def test_views_keep_shape_dtype_and_range_differ_and_are_reproducible(channels):
    images, _ = quadrant_images(16, channels=channels)
    seed = tf.constant([3, 4])
    view1, view2 = simclr_views(tf.constant(images), seed, blur_probability=0.5, noise=4.0)
    assert view1.shape == view2.shape == images.shape and view1.dtype == view2.dtype == tf.uint8
    assert np.mean(view1.numpy() != view2.numpy()) > 0.5, "two independent views of each image"
    again = simclr_views(tf.constant(images), seed, blur_probability=0.5, noise=4.0)
    np.testing.assert_array_equal(again[0], view1)
    np.testing.assert_array_equal(again[1], view2)
    other = simclr_views(tf.constant(images), tf.constant([3, 5]), blur_probability=0.5, noise=4.0)
    assert np.mean(other[0].numpy() != view1.numpy()) > 0.5

    floats = simclr_augment(tf.constant(images, tf.float32) * 1.5, seed, jitter=1.0, noise=20.0)
    assert floats.dtype == tf.float32 and floats.shape == images.shape
    assert 0.0 <= floats.numpy().min() and floats.numpy().max() <= 255.0
    assert floats.numpy().max() == 255.0, "values pushed past 255 are clipped, not wrapped"


def test_colour_jitter_keeps_gray_rgb_images_gray():
    gray, _ = quadrant_images(16, channels=1)
    rgb = np.repeat(gray, 3, axis=3)
    view = simclr_augment(tf.constant(rgb, tf.float32), tf.constant([1, 2]), jitter=1.0, jitter_probability=1.0).numpy()
    np.testing.assert_allclose(view[..., 0], view[..., 1], atol=1e-2)
    np.testing.assert_allclose(view[..., 0], view[..., 2], atol=1e-2)
    assert np.abs(view - rgb).mean() > 5, "brightness and contrast still change gray images"


def test_colour_jitter_changes_the_colours_of_rgb_images():
    images, _ = quadrant_images(16, channels=3, seed=4)
    view = simclr_augment(tf.constant(images, tf.float32), tf.constant([1, 2]), crop_scale=(1.0, 1.0), flip=False,
                          jitter=1.0, jitter_probability=1.0, grayscale_probability=0.0).numpy()
    # The share of each pixel's value in each channel moves (hue, saturation), not only the overall level.
    share = images / np.maximum(images.sum(axis=3, keepdims=True), 1)
    new_share = view / np.maximum(view.sum(axis=3, keepdims=True), 1)
    assert np.abs(new_share - share).mean() > 0.02


def test_full_crop_is_the_identity_and_blur_keeps_constant_images():
    images, _ = quadrant_images(4, size=16)
    crop = random_resized_crop(tf.constant(images), tf.constant([0, 1]), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(crop.numpy(), images, atol=1e-4)
    flat = tf.fill([2, 20, 20, 3], 100.0)
    np.testing.assert_allclose(gaussian_blur(flat, tf.constant([0, 1]), probability=1.0).numpy(), 100.0, rtol=1e-5)
    noisy = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 20, 20, 1)), tf.float32)
    blurred = gaussian_blur(noisy, tf.constant([0, 1]), sigma=(1.5, 2.0), probability=1.0)
    assert np.std(blurred.numpy()) < 0.8 * np.std(noisy.numpy())


# Outputs of the ops for these inputs and seeds when they lived in kvision/train/simclr.py (TF 2.21, x86-64 CPU):
# moving or refactoring them must not change a SimCLR run's views.
PINNED_RGB_VIEW = np.array([
    [[46.323, 53.491, 53.830], [50.334, 46.862, 50.084], [47.835, 43.490, 42.788], [33.737, 41.645, 38.363]],
    [[71.017, 63.569, 65.788], [58.208, 61.244, 62.348], [58.153, 56.550, 59.689], [53.882, 56.212, 53.948]],
    [[78.098, 78.741, 82.196], [76.637, 76.345, 76.457], [65.406, 74.047, 74.270], [68.010, 67.311, 71.424]],
    [[95.012, 95.990, 94.625], [88.326, 93.148, 92.664], [83.318, 88.645, 85.319], [81.423, 84.761, 76.818]],
], np.float32)
PINNED_GRAY_VIEWS = np.array([
    [[[99, 88, 67, 44], [52, 150, 148, 125], [81, 145, 137, 114], [124, 101, 97, 85]],
     [[203, 195, 187, 179], [183, 175, 167, 159], [163, 155, 147, 139], [143, 135, 127, 119]]],
    [[[154, 169, 184, 199], [127, 142, 157, 172], [77, 92, 107, 122], [105, 120, 108, 91]],
     [[73, 62, 87, 113], [108, 7, 32, 58], [94, 108, 133, 159], [27, 52, 78, 103]]],
], np.uint8)


def test_views_give_the_pinned_numbers_for_a_seed():
    rgb = (np.arange(48, dtype=np.float32).reshape(1, 4, 4, 3) * 5.0) % 256
    view = simclr_augment(tf.constant(rgb), tf.constant([7, 11]), jitter=1.0, jitter_probability=1.0,
                          grayscale_probability=0.0, blur_probability=1.0, noise=3.0).numpy()
    np.testing.assert_allclose(view[0], PINNED_RGB_VIEW, atol=2e-3)  # crop, flip, jitter, hue, blur, noise

    gray = ((np.arange(32).reshape(2, 4, 4, 1) * 37) % 256).astype(np.uint8)
    views = np.stack([view.numpy()[..., 0] for view in simclr_views(tf.constant(gray), tf.constant([5, 6]))])
    assert views.dtype == np.uint8
    # Rounded to integers: at most a rounding step away on another CPU's float arithmetic.
    np.testing.assert_allclose(views.astype(int), PINNED_GRAY_VIEWS.astype(int), atol=1)
    assert np.mean(views == PINNED_GRAY_VIEWS) > 0.95
