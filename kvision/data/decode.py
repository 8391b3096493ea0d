"""One bounded image decoder: encoded JPEG, PNG, GIF or BMP bytes to uint8 pixels, inside a TensorFlow graph.

Every path that turns bytes from a user or a client into pixels goes
through ``decode_image``: the exported signatures, the captioner, the image
folder loader and the streamed pipelines. It reads the image's dimensions
from its header before decoding anything (``tf.io.extract_jpeg_shape``, the
PNG IHDR chunk, the GIF logical screen, the BMP info header) and refuses,
with ``InvalidArgumentError``, an encoded input over ``max_bytes`` or an
image over ``max_pixels``. So a few-hundred-KB "decompression bomb" that
declares 23 000 × 23 000 pixels costs a header read, not 9 GB. A GIF is cut
after its first frame before decoding (an animation of 300 frames would
otherwise be decoded whole to keep one), images are decoded to the model's
channel count, and resized while still uint8: the only float32 copy is at
the model's input size.
"""

import dataclasses
import functools
import re
from pathlib import Path

import tensorflow as tf

from kvision.data.crop import EVAL_CROPS, center_window, resize_to
from kvision.data.files import check_file_size
from kvision.errors import DataError

# Defaults of the budgets; exports record theirs (``--max-image-pixels``, ``--max-image-bytes``).
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: a 7 300 × 5 500 photo; decoded RGB uint8 ≈ 120 MB
MAX_IMAGE_BYTES = 20 * 2**20  # 20 MiB of encoded bytes per image
MAX_BATCH = 256  # images per serving request

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
_JPEG, _PNG, _GIF, _BMP = range(len(FORMATS))
_HEADER = 32  # bytes read to recognise a format and its size
# A GIF's blocks up to the end of its first frame are walked in a loop that jumps over runs of up to
# _GIF_LOOKAHEAD full (255-byte) data sub-blocks; the cap on its steps only stops crafted chains of tiny blocks.
_GIF_LOOKAHEAD = 64
_GIF_BLOCKS_PER_BYTE = 1 / 255


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """The budgets of bytes a client or a user hands to the decoder.

    Attributes:
        max_pixels: largest ``height × width`` decoded (from the header, before decoding).
        max_bytes: largest encoded image.
        max_batch: most images in one serving request.
    """

    max_pixels: int = MAX_IMAGE_PIXELS
    max_bytes: int = MAX_IMAGE_BYTES
    max_batch: int = MAX_BATCH

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageLimits.{name} must be a positive integer. Received: {name}={value!r}")


def _require(condition, message, *values):
    """An op failing with ``InvalidArgumentError: message`` (``{}`` filled from ``values``) unless ``condition``."""
    return tf.debugging.Assert(condition, [tf.strings.format(message, values, summarize=-1)])


def _header(encoded):
    """The first ``_HEADER`` bytes of ``encoded`` as int64 ``[_HEADER]``, zero-padded when shorter."""
    padded = tf.strings.substr(tf.strings.join([encoded, b"\0" * _HEADER]), 0, _HEADER)
    return tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)


def _uint(head, offset, size, big_endian):
    """The unsigned integer in ``head[offset : offset + size]``."""
    order = range(size) if big_endian else reversed(range(size))
    value = tf.constant(0, tf.int64)
    for i in order:
        value = value * 256 + head[offset + i]
    return value


def _format(head):
    """Index into ``FORMATS`` of the format ``head`` starts with, -1 for anything else."""
    def starts(magic):
        return tf.reduce_all(tf.equal(head[: len(magic)], tf.constant(list(magic), tf.int64)))

    index = tf.constant(-1)
    for i, magic in reversed(list(enumerate((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")))):
        index = tf.where(starts(magic), i, index)
    return index


def _signed32(value):
    return tf.where(value >= 2**31, value - 2**32, value)


def _dimensions(encoded, head, fmt):
    """``(height, width)`` as int64 from the header alone, nothing decoded."""
    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
        return shape[0], shape[1]

    return tf.switch_case(fmt, [
        jpeg,
        lambda: (_uint(head, 20, 4, True), _uint(head, 16, 4, True)),  # IHDR: width, height
        lambda: (_uint(head, 8, 2, False), _uint(head, 6, 2, False)),  # logical screen width, height
        lambda: (tf.abs(_signed32(_uint(head, 22, 4, False))), tf.abs(_signed32(_uint(head, 18, 4, False)))),
    ])  # fmt: skip


def _gif_first_frame(encoded, max_blocks):
    """``encoded`` cut after its first image's data, with the GIF trailer: a one-frame GIF.

    Walks the blocks (Graphics Interchange Format 89a, sections 17–27):
    extensions and their sub-blocks, then the first image descriptor, its
    colour table and LZW data sub-blocks.
    """
    data = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int32)
    size = tf.size(data)
    flags = data[10]
    start = 13 + tf.where(flags >= 128, 3 * 2 ** (flags % 8 + 1), 0)  # header, screen descriptor, global colours
    # State: 0 = at a block introducer, 1 = in an extension's sub-blocks, 2 = in the image's data sub-blocks,
    # 3 = done, 4 = not a well-formed GIF.
    def step(position, state):
        byte = data[tf.minimum(position, size - 1)]
        packed = data[tf.minimum(position + 9, size - 1)]
        local_colours = tf.where(packed >= 128, 3 * 2 ** (packed % 8 + 1), 0)
        at_block = tf.stack([position + 2, position + 10 + local_colours + 1])  # after "21 label" / descriptor + LZW size
        next_block = tf.where(byte == 0x21, at_block[0], at_block[1])
        block_state = tf.where(byte == 0x21, 1, tf.where(byte == 0x2C, 2, 4))
        sub_block_end = tf.where(byte == 0, tf.where(state == 2, 3, 0), state)
        # Encoders write full 255-byte sub-blocks: jump over a run of them at once.
        ahead = position + 256 * tf.range(_GIF_LOOKAHEAD)
        full = tf.logical_and(tf.gather(data, tf.minimum(ahead, size - 1)) == 255, ahead < size)
        run = tf.reduce_sum(tf.math.cumprod(tf.cast(full, tf.int32)))
        in_sub_blocks = tf.where(run > 0, position + 256 * run, position + byte + 1)
        position = tf.where(state == 0, next_block, in_sub_blocks)
        state = tf.where(state == 0, block_state, tf.where(run > 0, state, sub_block_end))
        return position, tf.where(position > size, 4, state)

    end, state = tf.while_loop(
        lambda position, state: state < 3, step, (start, tf.constant(0)), maximum_iterations=max_blocks
    )
    check = _require(
        tf.equal(state, 3),
        "expected a GIF whose first frame ends within {} blocks. Received: a malformed GIF of {} bytes "
        "(or a longer chain of blocks)", max_blocks, size,
    )
    with tf.control_dependencies([check]):
        return tf.strings.join([tf.strings.substr(encoded, 0, end), b"\x3b"])


def _to_channels(image, channels):
    """A decoded uint8 ``[h, w, 1..4]`` image as ``channels`` (1 or 3) channels, alpha dropped."""
    has_color = tf.shape(image)[-1] >= 3
    if channels == 3:
        return tf.cond(has_color, lambda: image[..., :3], lambda: tf.image.grayscale_to_rgb(image[..., :1]))
    return tf.cond(has_color, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1])


def image_dimensions(encoded, limits=ImageLimits()):
    """``(format, height, width)`` of one encoded image from its header, after the budget checks; nothing decoded.

    ``format`` indexes ``FORMATS``; height and width are int64. Fails (when
    run) with ``InvalidArgumentError`` for an input over ``limits.max_bytes``,
    in another format, or declaring more than ``limits.max_pixels``.
    """
    head = _header(encoded)
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    fmt = _format(head)
    checks = [
        _require(length <= limits.max_bytes, "expected an encoded image of at most {} bytes. Received: {} bytes",
                 limits.max_bytes, length),
        _require(fmt >= 0, "expected a JPEG, PNG, GIF or BMP image. Received: {} bytes starting {}",
                 length, head[:8]),
    ]
    with tf.control_dependencies(checks):
        height, width = _dimensions(encoded, head, tf.maximum(fmt, 0))
    size_check = _require(
        height * width <= limits.max_pixels,
        "expected an image of at most {} pixels. Received: {} x {} = {} pixels (height x width)",
        limits.max_pixels, height, width, height * width,
    )
    with tf.control_dependencies([size_check]):
        return tf.maximum(fmt, 0), tf.identity(height), tf.identity(width)


def decode_image(encoded, channels=0, limits=ImageLimits(), *, window=None):
    """One encoded image (a string scalar) as uint8 ``[h, w, channels]``, within ``limits``.

    Args:
        encoded: JPEG, PNG, GIF or BMP bytes (a GIF gives its first frame).
        channels: 1 or 3 for the model's channels (alpha dropped, grey
            repeated or colour converted); 0 keeps the image's own (1 to 4).
        limits: ``ImageLimits``; its ``max_bytes`` and ``max_pixels`` apply.
        window: ``window(height, width) -> int32 [top, left, height, width]``
            (``kvision.data.crop``): only that part of the image is returned;
            a JPEG decodes only that part (``decode_and_crop_jpeg``).

    Raises:
        InvalidArgumentError: (when run) for an input over a budget, in
            another format, or undecodable; the message says which.
    """
    fmt, height, width = image_dimensions(encoded, limits)
    max_blocks = int(limits.max_bytes * _GIF_BLOCKS_PER_BYTE) + 1024
    box = None if window is None else window(height, width)

    def jpeg():
        if box is None:
            return tf.io.decode_jpeg(encoded, channels=channels)
        return tf.image.decode_and_crop_jpeg(encoded, box, channels=channels)

    def crop(image):
        return image if box is None else image[box[0] : box[0] + box[2], box[1] : box[1] + box[3]]

    image = tf.switch_case(fmt, [
        jpeg,
        lambda: crop(tf.io.decode_png(encoded, channels=channels)),
        lambda: crop(tf.io.decode_gif(_gif_first_frame(encoded, max_blocks))[0]),
        lambda: crop(tf.io.decode_bmp(encoded)),
    ])  # fmt: skip
    return image if channels == 0 else _to_channels(image, channels)


def check_batch(inputs, item_shape, limits, *, what):
    """``inputs`` unchanged if shaped ``[N, *item_shape]`` with 1 <= N <= ``limits.max_batch``; else InvalidArgument.

    Runs in the graph before any layer: a serving client may send any rank
    (the signature's static shape is not enforced on the way in), and the
    model's own errors ("Incompatible shapes: [3] vs. [2]") say nothing useful.
    ``what`` starts the message, e.g. "serve_images expects uint8 images".
    """
    # The rank a client really sent: through boolean_mask, whose output has no static size, so neither
    # tracing nor Grappler replaces it with the signature's declared rank.
    shape = tf.shape(inputs, out_type=tf.int64)
    shape = tf.boolean_mask(shape, shape >= 0)
    rank = tf.size(shape)
    expected = [-1, *item_shape]  # -1: any N
    padded = tf.concat([shape, tf.fill([tf.maximum(0, len(expected) - rank)], tf.constant(-2, tf.int64))], 0)
    ok = tf.logical_and(
        tf.equal(rank, len(expected)),
        tf.reduce_all(tf.logical_or(tf.equal(padded[: len(expected)], expected), tf.constant(expected) < 0)),
    )
    ok = tf.logical_and(ok, tf.logical_and(padded[0] >= 1, padded[0] <= limits.max_batch))
    dims = "".join(f", {d}" for d in item_shape)
    check = _require(
        ok, f"{what} of shape [N{dims}] with 1 <= N <= {limits.max_batch}. Received: the shape {{}}", shape,
    )
    with tf.control_dependencies([check]):
        return tf.identity(inputs)


def decode_center(encoded, image_shape, limits=ImageLimits()):
    """The evaluation view of an Inception-crop model: the central window, resized to uint8 ``image_shape``.

    The one definition the streamed evaluation and the exported signatures share (``kvision.data.crop``).
    """
    height, width, channels = image_shape
    window = functools.partial(center_window, size=(height, width))
    image = resize_to(decode_image(encoded, channels, limits, window=window), (height, width))
    return tf.ensure_shape(image, image_shape)


def decode_images(image_bytes, image_shape, limits=ImageLimits(), *, signature="serving_default", eval_crop="resize"):
    """A batch of encoded images (string ``[N]``) as float32 ``[N, H, W, C]`` in 0..255.

    Images are decoded one at a time (``decode_image``), so a request holds
    at most one full-size image in memory; those already at ``H×W`` pass
    through untouched (a lossless encoding of a training image reaches the
    model bit-exact). Others are, with ``eval_crop="resize"``, resized with
    antialiasing while uint8; with ``"center"``, cut to their central window
    and resized to uint8 exactly as a streamed evaluation does
    (``kvision.data.crop``). ``N`` must be in ``[1, limits.max_batch]``;
    ``signature`` names the caller in that message.
    """
    if eval_crop not in EVAL_CROPS.values():
        raise ValueError(f"eval_crop must be one of {sorted(EVAL_CROPS.values())}. Received: eval_crop={eval_crop!r}")
    height, width, channels = image_shape
    image_bytes = check_batch(image_bytes, (), limits, what=f"{signature} expects a string batch of encoded images")

    def decode_one(encoded):
        if eval_crop == "center":
            return tf.cast(decode_center(encoded, image_shape, limits), tf.float32)
        image = decode_image(encoded, channels, limits)
        same_size = tf.reduce_all(tf.shape(image)[:2] == (height, width))
        image = tf.cond(
            same_size,
            lambda: tf.cast(image, tf.float32),
            lambda: tf.image.resize(image, (height, width), antialias=True),  # uint8 in, float32 out
        )
        return tf.ensure_shape(image, image_shape)

    return tf.map_fn(
        decode_one, image_bytes, fn_output_signature=tf.TensorSpec(image_shape, tf.float32), parallel_iterations=1
    )


@functools.lru_cache(maxsize=None)
def _file_decoder(channels, limits):
    return tf.function(
        lambda encoded: decode_image(encoded, channels, limits), input_signature=[tf.TensorSpec((), tf.string)]
    )


def error_message(err):
    """A decoding ``InvalidArgumentError`` in one line: a budget's "expected … Received: …", or the decoder's."""
    found = re.search(r"assertion failed: \[(.*)\]", err.message)
    if found:
        return found.group(1)
    first_line = re.sub(r"^\{\{[^}]*\}\}\s*", "", err.message.strip()).splitlines()[0]
    return f"expected a JPEG, PNG, GIF or BMP image. Received: an undecodable file ({first_line})"


def decode_failure(encoded, channels=0, limits=ImageLimits()):
    """Why ``decode_image`` refuses ``encoded`` (bytes or a string tensor), in one line (``error_message``); None if it decodes."""
    try:
        _file_decoder(channels, limits)(tf.constant(encoded))
    except tf.errors.InvalidArgumentError as err:
        return error_message(err)
    return None


def read_image_file(path, channels=0, limits=ImageLimits()):
    """The image in file ``path`` as uint8 ``[h, w, channels]``, decoded by ``decode_image`` within ``limits``.

    The file's size is checked before it is read (a link to a 100 GiB file
    costs a ``stat``), then the header's dimensions before it is decoded.

    Raises:
        DataError: naming ``path``, for a file that is not a regular file,
            is over a budget, or is not a decodable JPEG, PNG, GIF or BMP.
    """
    path = Path(path)
    if not path.is_file():
        found = "not a regular file" if path.exists() else "no such file"
        raise DataError(f"{path}: expected an image file. Received: {found}")
    check_file_size(path, limits.max_bytes, "an image file")
    try:
        return _file_decoder(channels, limits)(tf.constant(path.read_bytes())).numpy()
    except tf.errors.InvalidArgumentError as err:
        raise DataError(f"{path}: {error_message(err)}") from None
