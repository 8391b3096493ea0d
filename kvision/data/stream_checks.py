"""What a streamed split holds, learnt by reading it: statistics and images of a bounded sample, and its bad images.

Used where a stream meets code that needs arrays or a verdict: the model's
``Normalization`` statistics, the export's evaluation and calibration
images, and the name of a file that failed to decode somewhere inside
``tf.data`` (TensorFlow's own decode errors do not say which).
"""

import contextlib

import numpy as np
import tensorflow as tf

from kvision.data.decode import ImageLimits, decode_failure, decode_image
from kvision.data.stats import batch_channel_stats
from kvision.data.stream import StreamSplit, stream_pipeline
from kvision.errors import DataError

STATS_SAMPLE = 10_000  # training images the Normalization statistics are computed from
NAMED = 5  # skipped images named in a report
_BATCH = 256


def head(split, count, order_seed=None):
    """The first ``count`` examples of ``split`` as a ``StreamSplit``: in file order, or the source's order shuffled by ``order_seed``.

    Always read in that one order, whatever its reader asks.
    """
    count = min(count, split.count)

    def read(input_context=None, shuffle=False, seed=None):
        return split.read(input_context=input_context, shuffle=order_seed is not None, seed=order_seed).take(count)

    return StreamSplit(count, read)


def sample_batches(split, image_shape, count, *, seed=0, **options):
    """``count`` examples of ``split`` (``head``), seen as evaluation sees them, as numpy ``(uint8 images, int64 labels)`` batches.

    ``options``: ``crop``, ``limits``, ``skip_bad_images`` of ``stream_pipeline``.
    """
    pipeline = stream_pipeline(head(split, count, seed), image_shape=image_shape, batch_size=_BATCH, training=False,
                               **options)
    for images, labels in pipeline:
        yield images.numpy().astype(np.uint8), labels.numpy()


def sample_channel_stats(split, image_shape, *, sample=STATS_SAMPLE, **options):
    """Per-channel ``(mean, std)`` for a model's ``Normalization``, from ``sample`` images of ``split``.

    A bounded sample: the first ``sample`` images of the source's order
    shuffled by ``seed`` (the files of every class), as evaluation brings them
    to ``image_shape`` (resized, or centre-cropped with ``crop="inception"``):
    a few thousand images pin the statistics of a channel well, and reading
    all of a large set would cost an extra epoch. ``options`` as for
    ``sample_batches``.
    """
    return batch_channel_stats(images for images, _ in sample_batches(split, image_shape, sample, **options))


def sample_arrays(split, image_shape, count, **options):
    """``count`` examples of ``split`` as evaluation sees them: ``(uint8 [n, H, W, C], int64 [n])``; see ``sample_batches``."""
    batches = list(sample_batches(split, image_shape, count, **options))
    if not batches:
        raise DataError(f"Expected a readable image among {count} examples. Received: none")
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def bad_images(split, channels, limits=ImageLimits()):
    """``(id, reason)`` of each example of ``split`` that fails to decode, in file order, lazily.

    Decodes the split in order with the failures dropped
    (``ignore_errors``) beside the list of its ids: an id missing from the
    first is a bad image. Reading stops when the caller does.
    """
    decoded = split.read().map(
        lambda encoded, _label, identifier: (identifier, tf.size(decode_image(encoded, channels, limits))),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).ignore_errors()
    good = (identifier.numpy() for identifier, _ in decoded)
    pending = next(good, None)
    for encoded, _label, identifier in split.read():
        if identifier.numpy() == pending:
            pending = next(good, None)
        else:
            yield identifier.numpy().decode(errors="replace"), decode_failure(encoded, channels, limits)


@contextlib.contextmanager
def naming_bad_images(splits, channels, limits=ImageLimits()):
    """Run the block; a decoding failure inside it becomes one ``DataError`` naming the first bad image of ``splits``.

    An ``InvalidArgumentError`` that no image of ``splits`` explains is raised unchanged.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError:
        for split in splits:
            found = next(bad_images(split, channels, limits), None)
            if found:
                raise DataError(f"{found[0]}: {found[1]}") from None
        raise


def skipped_images(splits, channels, limits=ImageLimits(), *, named=NAMED):
    """``{split name: {"count": n, "first": ["id: reason", …]}}`` of the bad images of ``splits`` (a dict), for a report.

    Reads every split whole once (see ``bad_images``); splits without a bad image are left out.
    """
    report = {}
    for name, split in splits.items():
        count, first = 0, []
        for identifier, reason in bad_images(split, channels, limits):
            count += 1
            if len(first) < named:
                first.append(f"{identifier}: {reason}")
        if count:
            report[name] = {"count": count, "first": first}
    return report
