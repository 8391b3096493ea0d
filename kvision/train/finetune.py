"""Transfer learning: a pretrained backbone, a new head, frozen stages, two-phase fine-tuning.

The procedure of the Keras transfer-learning guide
(https://keras.io/guides/transfer_learning/; why it works: Yosinski et al.
2014, https://arxiv.org/abs/1411.1792): first train a new classification head
on the frozen backbone, so its random initial gradients do not wreck the
pretrained features; then unfreeze the backbone (or its last stages) and train
everything with a lower learning rate. BatchNormalization layers stay frozen
throughout: in Keras 3 a frozen BN layer runs in inference mode, normalising
with the moving statistics learnt in pretraining instead of those of the small
fine-tuning batches. Dropout inside the backbone stays active while training.

A backbone is a ``keras.Model`` from raw 0..255 images to a feature vector,
like every kvision classifier minus its ``logits`` layer; it comes from a
registered kvision model, a ``.keras`` file, or Keras Applications.
"""

import os
import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from kvision.data.stream import StreamSplit
from kvision.errors import ModelError
from kvision.layers import preprocess
from kvision.models import build, list_models
from kvision.models.common import classifier_backbone, classifier_logits, is_positive_int, logits_layer, require
from kvision.saving import load_model
from kvision.train.engine import fit_or_load, result_checkpoint, with_policy
from kvision.train.strategy import get_strategy

# Per-channel (mean, std) on the 0..255 scale of the preprocessing each Keras
# Applications model was trained with (keras.applications.imagenet_utils), or
# None for models that hold their own preprocessing layers.
TF_MODE = ((127.5,) * 3, (127.5,) * 3)  # x / 127.5 - 1
TORCH_MODE = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))  # ImageNet mean and std
APPLICATIONS = {
    "MobileNetV2": TF_MODE,
    "MobileNetV3Small": None,
    "MobileNetV3Large": None,
    "ResNet50V2": TF_MODE,
    "EfficientNetB0": None,
    "DenseNet121": TORCH_MODE,
}
APPLICATION_MIN_SIZE = 32

# A layer's stage is the first group of the first pattern its name matches.
STAGE_PATTERNS = (
    r"^(stage\d+)_",  # kvision ResNets: stage{k}_block{b}_…
    r"^(block\d+)[a-z]?_",  # kvision CNN: block{b}_…; EfficientNet: block{k}{a,b,…}_…
    r"^(conv\d+)_block",  # ResNet50V2, DenseNet121: conv{k}_block{b}_…
    r"^(block_\d+)_",  # MobileNetV2: block_{k}_…
    r"^(expanded_conv(?:_\d+)?)_",  # MobileNetV2's first block, MobileNetV3: expanded_conv_{k}_…
)
HEAD_PATTERN = r"^logits(_|$)"


def load_backbone(source, input_shape=None, *, weights=None, **options):
    """A backbone: raw 0..255 images → feature vector, from a model name or a ``.keras`` file.

    ``source`` is one of:

    * a registered kvision classifier (``"cnn"``, ``"resnet20"``, …), built
      with random weights for ``input_shape``; ``options`` go to its builder.
    * a path ending in ``.keras``. A model with a layer named ``"logits"`` is a
      kvision classifier and its backbone is taken (everything before
      ``logits``); any other model is taken as a backbone as it is and must
      output ``(batch, features)`` — what ``backbone.save(path)`` writes here
      and what a SimCLR pretraining saves.
    * a Keras Applications name in ``APPLICATIONS`` (``"MobileNetV2"``,
      ``"ResNet50V2"``, ``"EfficientNetB0"``, …) without its top, globally
      average-pooled, with the preprocessing it expects as layers in front of
      it (and grayscale repeated to 3 channels), so the backbone takes raw
      0..255 images like every kvision model. ``weights`` is a local weights
      file of the model without its top (``include_top=False``), or None for
      random weights; with internet access ``weights="imagenet"`` downloads
      the ImageNet weights. ``options`` go to the constructor (``alpha=0.35``).

    Layers are built under the current dtype policy, also when loaded from a
    file, so the backbone trains in mixed precision when asked.

    Args:
        source: model name or ``.keras`` path, as above.
        input_shape: ``(height, width, channels)``; required for names, checked for files.
        weights: Keras Applications weights: a file path, ``"imagenet"`` or None.
        **options: builder or constructor options.
    """
    if isinstance(source, os.PathLike) or str(source).endswith(".keras"):
        require(weights is None and not options, "A .keras backbone is loaded as saved: no weights or options.",
                weights=weights, **options)
        backbone = _saved_backbone(Path(source))
    elif source in list_models("classifier"):
        require(weights is None, f"weights= is for Keras Applications; to start {source!r} from trained weights, "
                "pass the .keras file of the trained classifier as source.", weights=weights)
        require(input_shape is not None, f"Building {source!r} needs an input_shape.", input_shape=input_shape)
        backbone = classifier_backbone(build(source, input_shape, 1, **options), name=f"{source}_backbone")
    elif source in APPLICATIONS:
        backbone = _application_backbone(source, input_shape, weights, options)
    else:
        raise ModelError(
            f"Expected a registered classifier ({', '.join(list_models('classifier'))}), a path to a .keras file, "
            f"or a Keras Applications model ({', '.join(APPLICATIONS)}). Received: source={source!r}"
        )
    if input_shape is not None:
        require(tuple(backbone.input_shape[1:]) == tuple(input_shape),
                f"The backbone takes images of shape {tuple(backbone.input_shape[1:])}.", input_shape=input_shape)
    # One input tensor, not a list of one: called on an image batch without Keras' structure warning.
    return keras.Model(backbone.inputs[0], backbone.outputs[0], name=backbone.name)


def _saved_backbone(path):
    """The backbone in the ``.keras`` file ``path`` (see ``load_backbone``), under the current policy."""
    require(path.is_file() and path.suffix == ".keras", "Expected an existing .keras model file.", source=str(path))
    model = load_model(path)
    is_classifier = any(layer.name == "logits" for layer in model.layers)
    backbone = classifier_backbone(model) if is_classifier else model
    require(
        len(backbone.outputs) == 1 and len(backbone.outputs[0].shape) == 2,
        "Expected a kvision classifier (final layer 'logits') or a backbone whose output is a feature "
        "vector (batch, features).",
        source=str(path), outputs=[tuple(output.shape) for output in backbone.outputs],
    )
    return with_policy(backbone, keras.mixed_precision.dtype_policy())  # its saved policy would ignore mixed_precision


def _application_backbone(name, input_shape, weights, options):
    """Keras Applications' ``name`` without top, after its preprocessing, from raw 0..255 images."""
    require(
        isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and input_shape[2] in (1, 3)
        and all(map(is_positive_int, input_shape)) and min(input_shape[:2]) >= APPLICATION_MIN_SIZE,
        f"{name} takes input_shape=(height, width, 1 or 3) of at least "
        f"{APPLICATION_MIN_SIZE}×{APPLICATION_MIN_SIZE} pixels.",
        input_shape=input_shape,
    )
    require(weights in (None, "imagenet") or Path(weights).is_file(),
            f"weights for {name} is a local weights file (include_top=False), 'imagenet' or None.", weights=weights)
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
    x = inputs if input_shape[2] == 3 else layers.Concatenate(name="grayscale_to_rgb")([inputs] * 3)
    if APPLICATIONS[name] is not None:
        x = preprocess(x, *APPLICATIONS[name])
    try:
        model = getattr(keras.applications, name)(
            input_tensor=x, include_top=False, weights=None if weights is None else str(weights),
            pooling="avg", **options,
        )
    except (TypeError, ValueError) as err:
        raise ModelError(f"Could not build {name} with these weights and options. "
                         f"Received: weights={weights!r}, options={options}: {err}") from None
    except Exception as err:  # keras.utils.get_file raises a bare Exception when a download fails
        if "URL fetch failure" not in str(err):
            raise
        raise ModelError(f"Could not download the ImageNet weights of {name}: expected internet access, or a local "
                         f"weights file of {name} without its top passed as weights (--weights PATH). "
                         f"Received: {err}") from None
    return keras.Model(inputs, model.outputs[0], name=f"{name.lower()}_backbone")


def with_new_head(backbone, num_classes, *, dropout=0.0, name=None):
    """A kvision classifier: ``backbone``, optional dropout, and a new ``Dense`` named ``"logits"``.

    The backbone's layers are shared, not copied, and its input (name
    included) is the classifier's. The logits stay float32 under mixed
    precision.

    Args:
        backbone: a model from images to a feature vector (``load_backbone``).
        num_classes: number of output logits.
        dropout: rate of a dropout (``logits_dropout``) on the features; 0 for none.
        name: model name; the backbone's without ``_backbone`` by default.
    """
    require(is_positive_int(num_classes), "num_classes must be positive.", num_classes=num_classes)
    require(isinstance(dropout, (int, float)) and 0 <= dropout < 1, "dropout must be a rate in [0, 1).",
            dropout=dropout)
    require(len(backbone.outputs) == 1 and len(backbone.outputs[0].shape) == 2,
            "Expected a backbone with one (batch, features) output.",
            outputs=[tuple(output.shape) for output in backbone.outputs])
    x = backbone.outputs[0]
    if dropout:
        x = layers.Dropout(dropout, name="logits_dropout")(x)
    return keras.Model(backbone.inputs[0], classifier_logits(x, num_classes),
                       name=name or backbone.name.removesuffix("_backbone"))


def backbone_stages(model):
    """The stages of ``model`` outside its head, in order: ``{stage: [layers]}``.

    A layer's stage comes from its name (``STAGE_PATTERNS``): ``stage{k}`` of
    the kvision ResNets, ``block{b}`` of the kvision CNN, ``conv{k}`` of
    ResNet50V2 and DenseNet121, ``block{k}`` of EfficientNet, ``block_{k}`` of
    MobileNetV2, ``expanded_conv_{k}`` of MobileNetV3. Layers before the first
    stage (input, preprocessing, stem) form the ``"stem"`` stage; a later layer
    whose name names no stage (pooling, a final norm, the CNN's hidden dense
    layer) belongs to the stage before it. The head is every layer named
    ``logits`` or ``logits_…``.
    """
    stages = {"stem": []}
    current = "stem"
    for layer in model.layers:
        if re.match(HEAD_PATTERN, layer.name):
            continue
        for pattern in STAGE_PATTERNS:
            match = re.match(pattern, layer.name)
            if match:
                current = match.group(1)
                break
        stages.setdefault(current, []).append(layer)
    return stages


def check_trainable(trainable):
    """Raise ``ModelError`` unless ``trainable`` is ``"all"``, ``"head"`` or a stage count ``N >= 0``."""
    is_count = isinstance(trainable, (int, np.integer)) and not isinstance(trainable, bool) and trainable >= 0
    require(is_count or trainable in ("all", "head"), "trainable is 'all', 'head' or a number of stages N >= 0.",
            trainable=trainable)


def set_trainable(model, trainable="all"):
    """Freeze all or part of a classifier's backbone; its head stays trainable. Returns ``model``.

    BatchNormalization layers (``FusedBatchNormalization`` included) are
    always frozen, so they run in inference mode and their moving statistics
    stay those of pretraining. Set it before compiling (``fit_classifier``
    compiles after ``model_fn`` returns).

    Args:
        model: a classifier with a final layer named ``"logits"``.
        trainable: ``"all"`` (the whole backbone), ``"head"`` (only the
            ``logits`` layer: a linear probe), or ``N`` (the last ``N`` stages
            of ``backbone_stages``; 0 is ``"head"``, as many as there are is
            ``"all"``).
    """
    check_trainable(trainable)
    logits_layer(model)
    stages = list(backbone_stages(model).values())
    count = {"all": len(stages), "head": 0}.get(trainable, trainable)
    model.trainable = True
    for index, stage in enumerate(stages):
        for layer in stage:
            layer.trainable = index >= len(stages) - count
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    return model


def fine_tune(
    source,
    train,
    validation=None,
    *,
    run_dir,
    num_classes=None,
    input_shape=None,
    weights=None,
    backbone_options=None,
    dropout=0.0,
    head_epochs=5,
    epochs=10,
    head_learning_rate=1e-2,
    learning_rate=1e-3,
    trainable="all",
    **fit_options,
):
    """Fine-tune a pretrained backbone on ``train``: head first, then the backbone, at a lower learning rate.

    Phase 1 (``run_dir/head``) trains a new head on the frozen backbone;
    phase 2 (``run_dir/finetune``) starts from phase 1's result (its best
    checkpoint with validation data, else its last), unfreezes the
    ``trainable`` stages and trains them with the head at ``learning_rate``.
    BatchNormalization stays in inference mode in both. Each phase is a
    ``fit_classifier`` run, so it logs, checkpoints and resumes; a finished
    phase is not run again. ``epochs=0`` trains the head only (a linear probe:
    the head has no hidden layer); ``head_epochs=0`` starts phase 2 with a
    random head.

    Args:
        source, weights, backbone_options: the backbone, see ``load_backbone``
            (``backbone_options`` are its ``**options``); loaded afresh inside
            each phase's strategy scope.
        train, validation: ``(uint8 images NHWC, int labels)`` arrays, or
            ``StreamSplit``s (then ``num_classes`` and ``input_shape`` are needed).
        run_dir: the two phases' run directories go below it.
        num_classes: classes of the new head; default: the largest training label + 1.
        input_shape: default: the training images' shape.
        dropout: dropout on the features before the new logits.
        head_epochs, head_learning_rate: phase 1.
        epochs, learning_rate: phase 2.
        trainable: what phase 2 unfreezes, see ``set_trainable``.
        **fit_options: passed to ``fit_classifier`` in both phases
            (``batch_size``, ``optimizer``, ``weight_decay``, ``crop_padding``,
            ``flip``, ``seed``, ``mixed_precision``, ``strategy``, …).

    Returns:
        The ``TrainResult`` of the last phase run.
    """
    check_trainable(trainable)
    for label, count in (("head_epochs", head_epochs), ("epochs", epochs)):
        require(isinstance(count, int) and count >= 0, f"{label} must be a number of epochs >= 0.",
                **{label: count})
    require(head_epochs + epochs > 0, "At least one phase needs epochs.", head_epochs=head_epochs, epochs=epochs)
    run_dir = Path(run_dir)
    if isinstance(train, StreamSplit):
        require(input_shape is not None and num_classes is not None,
                "A streamed training split needs input_shape and num_classes.",
                input_shape=input_shape, num_classes=num_classes)
    input_shape = tuple(input_shape or np.shape(train[0])[1:])
    num_classes = num_classes or int(np.max(train[1])) + 1
    fit_options["strategy"] = fit_options.get("strategy") or get_strategy()

    def new_classifier():
        backbone = load_backbone(source, input_shape, weights=weights, **(backbone_options or {}))
        return with_new_head(backbone, num_classes, dropout=dropout)

    start = None
    if head_epochs:
        head = fit_or_load(
            lambda: set_trainable(new_classifier(), "head"), train, validation, run_dir=run_dir / "head",
            epochs=head_epochs, learning_rate=head_learning_rate, **fit_options,
        )
        if not epochs:
            return head
        start = result_checkpoint(head.run_dir, validation is not None and fit_options.get("restore_best", True))

    def from_head():
        model = new_classifier()
        if start is not None:
            model.load_weights(start)
        return set_trainable(model, trainable)

    return fit_or_load(from_head, train, validation, run_dir=run_dir / "finetune", epochs=epochs,
                       learning_rate=learning_rate, **fit_options)
