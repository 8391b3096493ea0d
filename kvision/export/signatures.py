"""Serving signatures for image classifiers, with pre- and postprocessing in the graph.

An exported classifier answers three signatures, so a client sends whatever
it has and needs neither kvision nor any preprocessing of its own:

- ``serving_default``: ``image_bytes`` string ``[N]``, encoded JPEG/PNG/BMP/GIF
  of any size, decoded, converted to the model's channels and resized in-graph;
- ``serve_images``: ``images`` uint8 ``[N, H, W, C]`` at the model's input size;
- ``serve_examples``: ``examples`` string ``[N]``, serialized ``tf.train.Example``
  protos holding the encoded image in the bytes feature ``image/encoded``.

All three return ``logits`` and ``probabilities`` (float32 ``[N, classes]``),
``class_id`` (int64 ``[N]``) and ``class_name`` (string ``[N]``, looked up in a
table stored in the graph).

A generator answers ``serving_default``: ``noise`` float32 ``[N, latent]``
(and ``label`` int32 ``[N]`` when class-conditional) → ``images`` uint8
``[N, H, W, C]``.

A seq2seq ``Translator`` answers ``serving_default``: ``inputs`` string
``[N]`` → ``outputs`` string ``[N]`` and ``scores`` float32 ``[N]``, and
``translate_beams``: the same input → every beam, ``[N, beam_width]``, best
first. Tokenisation, the search loop and detokenisation are in the graph;
the keras-hub tokenizers put TensorFlow Text ops in it (``TEXT_OPS_MODULE``).

A ``Captioner`` answers ``serving_default``: ``image_bytes`` string ``[N]``
(JPEG/PNG/BMP/GIF of any size) → ``captions`` string ``[N]`` and ``scores``
float32 ``[N]``, and ``caption_beams``: every beam. Image decoding, the
search and detokenisation are in the graph.
"""

import keras
import tensorflow as tf

from kvision.data.decode import ImageLimits, check_batch, decode_images
from kvision.errors import ExportError
from kvision.models.decoding import Captioner, Translator
from kvision.models.gan import generator_classes, to_uint8

EXAMPLE_FEATURE = "image/encoded"
TRANSLATOR_OUTPUTS = ("outputs", "scores")
CAPTIONER_OUTPUTS = ("captions", "scores")
# Loading a translator needs this module imported first: it registers the TensorFlow Text ops.
TEXT_OPS_MODULE = "tensorflow_text"
OUTPUTS = ("logits", "probabilities", "class_id", "class_name")


def signature_specs(image_shape):
    """Each signature's single input as ``{signature: (input name, TensorSpec)}``."""
    return {
        "serving_default": ("image_bytes", tf.TensorSpec((None,), tf.string, name="image_bytes")),
        "serve_images": ("images", tf.TensorSpec((None, *image_shape), tf.uint8, name="images")),
        "serve_examples": ("examples", tf.TensorSpec((None,), tf.string, name="examples")),
    }


def class_name_table(class_names):
    """A lookup table class id → class name, saved inside the SavedModel."""
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.range(len(class_names), dtype=tf.int64), tf.constant(list(class_names), tf.string)
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def classifier_archive(model, class_names, limits=ImageLimits(), eval_crop="resize"):
    """A ``keras.export.ExportArchive`` of ``model`` with the three classifier signatures.

    ``model`` takes float32 images in the raw 0..255 range and returns logits
    (kvision models normalise inside). The archive carries no Python objects:
    custom layers are traced into the graph. ``limits`` (``ImageLimits``)
    bounds each request: images per batch, and the bytes and pixels of each
    encoded image, checked before it is decoded. ``eval_crop`` is how encoded
    images of another size reach the model's: "resize" (a model trained with
    ``crop="pad"``) or "center" (``crop="inception"``), as its evaluation did
    (see ``kvision.data.decode.decode_images``).
    """
    image_shape = tuple(model.input_shape[1:])
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
        raise ExportError(
            f"Expected an image classifier taking [N, H, W, 1 or 3] inputs. Received: input shape {model.input_shape}"
        )
    table = class_name_table(class_names)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)

    def predict(images):
        logits = tf.cast(model(images, training=False), tf.float32)
        class_id = tf.argmax(logits, axis=-1)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "class_id": class_id,
            "class_name": table.lookup(class_id),
        }

    def from_pixels(images):
        images = check_batch(images, image_shape, limits, what="serve_images expects uint8 images")
        return predict(tf.cast(images, tf.float32))

    def from_examples(examples):
        examples = check_batch(examples, (), limits, what="serve_examples expects a string batch of tf.train.Examples")
        features = tf.io.parse_example(examples, {EXAMPLE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        return predict(decode_images(features[EXAMPLE_FEATURE], image_shape, limits, signature="serve_examples",
                                     eval_crop=eval_crop))

    endpoints = {
        "serving_default": lambda image_bytes: predict(decode_images(image_bytes, image_shape, limits, eval_crop=eval_crop)),
        "serve_images": from_pixels,
        "serve_examples": from_examples,
    }
    for name, (_, spec) in signature_specs(image_shape).items():
        archive.add_endpoint(name, endpoints[name], [spec])
    return archive


def generator_endpoint(generator, *, check_labels=True):
    """``(function, input specs)`` of a generator's ``serving_default``: noise (and label) → uint8 images.

    ``check_labels`` adds an in-graph check that labels are class ids (TFLite,
    which has no assert op, leaves it out).
    """
    latent_dim = int(generator.inputs[0].shape[-1])
    specs = [tf.TensorSpec((None, latent_dim), tf.float32, name="noise")]
    num_classes = generator_classes(generator)
    if num_classes is None:
        return (lambda noise: {"images": to_uint8(generator([noise], training=False))}), specs

    def draw(noise, label):
        if check_labels:  # before the embedding lookup, which would fail with a less helpful message
            message = f"label must be a class id in [0, {num_classes})"
            checks = [tf.debugging.assert_less(label, num_classes, message=message),
                      tf.debugging.assert_non_negative(label, message=message)]
            with tf.control_dependencies(checks):
                label = tf.identity(label)
        return {"images": to_uint8(generator([noise, label], training=False))}

    return draw, [*specs, tf.TensorSpec((None,), tf.int32, name="label")]


def generator_archive(generator):
    """A ``keras.export.ExportArchive`` of ``generator`` with its ``serving_default`` signature."""
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serving_default", *generator_endpoint(generator))
    return archive


def _serving_copy(model):
    """An uncompiled clone of ``model`` with its weights, so the optimizer's state stays out of an artifact."""
    copy = keras.Model.from_config(model.get_config())  # clone_model would compile the copy
    copy.set_weights(model.get_weights())
    return copy


def save_translator(translator, path):
    """Write ``translator`` (a ``kvision.models.decoding.Translator``) as a SavedModel with its two signatures."""
    serving = Translator(
        _serving_copy(translator.model), translator.source_vocab, translator.target_vocab,
        beam_width=translator.beam_width, alpha=translator.alpha,
    )
    tf.saved_model.save(
        serving,
        str(path),
        signatures={"serving_default": serving.translate, "translate_beams": serving.translate_beams},
    )


def save_captioner(captioner, path, limits=ImageLimits()):
    """Write ``captioner`` (a ``kvision.models.decoding.Captioner``) as a SavedModel with its two signatures.

    ``limits`` (``ImageLimits``) bounds the served requests.
    """
    serving = Captioner(
        _serving_copy(captioner.model), captioner.target_vocab, beam_width=captioner.beam_width, alpha=captioner.alpha,
        limits=limits,
    )
    tf.saved_model.save(
        serving,
        str(path),
        signatures={"serving_default": serving.caption, "caption_beams": serving.caption_beams},
    )
