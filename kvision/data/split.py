"""Hold out validation (and test) examples reproducibly: by a seeded permutation, or by a hash of each example's name."""

import hashlib
import numbers

import numpy as np

from kvision.errors import DataError


def _validation_count(size, total):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if 0 <= size < total or size == total == 0:
            return int(size)
    elif isinstance(size, numbers.Real) and 0.0 <= size < 1.0:
        return round(float(size) * total)
    raise DataError(
        f"Expected size to be a count in [0, {total}) or a fraction in [0, 1). Received: size={size!r}"
    )


def train_validation_split(images, labels, size, seed=0):
    """Split ``(images, labels)`` into training and validation parts.

    The same ``seed`` always picks the same examples; each part keeps the
    original order of its examples.

    Args:
        images: array ``(N, H, W, C)``.
        labels: array ``(N,)``.
        size: validation size, an int count or a float fraction of ``N``;
            ``0`` gives empty validation arrays.
        seed: seed of the random choice.

    Returns:
        ``((x_train, y_train), (x_val, y_val))``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 0 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"Expected images (N, ...) and labels (N,) of the same length N. "
            f"Received: images of shape {images.shape}, labels of shape {labels.shape}"
        )
    count = _validation_count(size, len(images))
    order = np.random.default_rng(seed).permutation(len(images))
    val_index, train_index = np.sort(order[:count]), np.sort(order[count:])
    return (images[train_index], labels[train_index]), (images[val_index], labels[val_index])


def select_classes(images, labels, classes):
    """The examples whose label is in ``classes``, relabelled ``0..len(classes)-1`` in that order.

    For transfer experiments: pretrain on some classes of a dataset, fine-tune
    on the others.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    classes = [int(c) for c in classes]
    missing = sorted(set(classes) - set(np.unique(labels).tolist()))
    if not classes or len(set(classes)) != len(classes) or missing:
        raise DataError(
            f"Expected distinct classes present in the labels ({sorted(np.unique(labels).tolist())}). "
            f"Received: classes={classes}" + (f", of which {missing} have no examples" if missing else "")
        )
    keep = np.isin(labels, classes)
    relabel = np.zeros(int(labels.max()) + 1, np.int64)
    relabel[classes] = np.arange(len(classes))
    return images[keep], relabel[labels[keep]]


def labelled_subset(images, labels, share, seed=0):
    """A class-balanced ``share`` (0 < share ≤ 1) of the examples, the same for the same ``seed``.

    Each class keeps ``round(share × its count)`` examples, at least one, so a
    1% subset still has every class. The kept examples keep their order.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if isinstance(share, bool) or not (isinstance(share, numbers.Real) and 0.0 < share <= 1.0):
        raise DataError(f"Expected a share in (0, 1]. Received: share={share!r}")
    rng = np.random.default_rng(seed)
    index = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        index.append(rng.choice(members, max(1, round(share * len(members))), replace=False))
    index = np.sort(np.concatenate(index))
    return images[index], labels[index]


def split_of(source, *, validation=0.05, test=0.1, seed=0):
    """The split (``"train"``, ``"validation"`` or ``"test"``) ``source`` belongs to.

    A SHA-256 hash of ``seed`` and the source string gives a number in [0, 1);
    the lowest ``test`` share goes to test, the next ``validation`` share to
    validation. Same answer in every process and on every machine.
    """
    if not (0 <= validation and 0 <= test and validation + test < 1):
        raise DataError(
            f"Expected validation and test fractions >= 0 summing to less than 1. "
            f"Received: validation={validation!r}, test={test!r}"
        )
    digest = hashlib.sha256(f"{seed}\0{source}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test else "validation" if u < test + validation else "train"
