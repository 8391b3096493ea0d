"""Small files that would cost gigabytes once decoded ("decompression bombs"), and ordinary images, as bytes.

Each bomb is a valid file of its format: without the decoder's budgets it
would really be decoded (a PNG of zero rows, a GIF of many frames).
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image, fmt, **options):
    """A uint8 ``[H, W]`` or ``[H, W, 3|4]`` array encoded by Pillow as ``fmt`` (PNG, JPEG, GIF, BMP)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(height, width):
    """A complete greyscale PNG of ``height × width`` zero pixels: a few hundred KB for 100 MP."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _skip_sub_blocks(data, position):
    while data[position]:
        position += data[position] + 1
    return position + 1


def gif_parts(data):
    """``(head, first_frame)``: a GIF's bytes before its first image descriptor, and that frame's blocks."""
    flags = data[10]
    position = 13 + (3 * 2 ** (flags % 8 + 1) if flags & 0x80 else 0)
    while data[position] == 0x21:  # extensions
        position = _skip_sub_blocks(data, position + 2)
    start = position
    packed = data[position + 9]
    position += 10 + (3 * 2 ** (packed % 8 + 1) if packed & 0x80 else 0) + 1  # descriptor, colours, LZW size
    return data[:start], data[start:_skip_sub_blocks(data, position)]


def gif_bomb(height, width, frames):
    """An animated GIF of ``frames`` ``height × width`` frames (one frame's blocks repeated)."""
    head, frame = gif_parts(encode(np.zeros((height, width), np.uint8), "GIF"))
    return head + frame * frames + b"\x3b"


def gif_frames(images):
    """An animated GIF of uint8 ``[H, W]`` ``images``, each frame stored whole."""
    frames = [Image.fromarray(image) for image in images]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], optimize=False, disposal=1)
    return buffer.getvalue()


def jpeg_bomb(height, width):
    """A small JPEG whose frame header (SOF0) declares ``height × width``."""
    data = bytearray(encode(np.zeros((8, 8), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_bomb(height, width):
    """A small BMP whose info header declares ``height × width``."""
    data = bytearray(encode(np.zeros((4, 4, 3), np.uint8), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)
