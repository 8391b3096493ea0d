"""One registry of model builders, looked up by name.

Builders are plain functions ``build_x(input_shape, num_classes, **options)``
(``build_x(source_vocab_size, target_vocab_size, **options)`` for seq2seq
models, ``build_x(input_shape, vocab_size, **options)`` for captioners,
``build_x(input_shape, **options)`` for the VAE's networks) returning a functional ``keras.Model``. A registered name binds a builder to a
dict of default options (a *variant*), so ``resnet56`` is ``build_cifar_resnet``
with ``depth=56``; ``build(name, ..., **overrides)`` merges the overrides on top.
Each name also has a task (``"classifier"``, ``"gan"``, ``"seq2seq"``, ``"vae"``, ``"captioning"``), so a
recipe lists and accepts only the models it can train.
"""

import difflib
import inspect

from kvision.errors import ModelError

_REGISTRY = {}


def register_model(name, builder=None, /, *, task="classifier", **defaults):
    """Register ``builder`` under ``name`` for ``task`` with default keyword options.

    Usable directly, ``register_model("resnet20", build_cifar_resnet, depth=20)``,
    or as a decorator, ``@register_model("cnn")``. The name and builder are
    positional-only, so the defaults may set the built model's ``name``.
    """
    if builder is None:
        return lambda fn: register_model(name, fn, task=task, **defaults)
    if name in _REGISTRY:
        raise ModelError(f"Each model name is registered once. Received: name={name!r}")
    _REGISTRY[name] = (builder, dict(defaults), task)
    return builder


def list_models(task=None):
    """Names of every registered model (of ``task``, if given), sorted."""
    return sorted(name for name, (_, _, registered) in _REGISTRY.items() if task in (None, registered))


def get_builder(name, task=None):
    """The ``(builder, defaults)`` pair registered under ``name``, checked to be for ``task`` if given."""
    names = list_models(task)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        kind = "" if task is None else f" {task}"
        raise ModelError(
            f"Unknown{kind} model name.{hint} Expected one of: {', '.join(names)}. Received: name={name!r}"
        )
    builder, defaults, _ = _REGISTRY[name]
    return builder, defaults


def build(name, /, *args, **overrides):
    """Build the registered model ``name``: ``build("resnet20", (32, 32, 3), 10)``.

    ``args`` are the builder's positional arguments (input shape and class
    count for classifiers and GANs, source and target vocabulary sizes for
    seq2seq models); ``overrides`` replace the variant's default options
    (``name`` among them: the registered name is positional-only). An option
    the builder does not take raises ``ModelError`` listing the ones it does.
    """
    builder, defaults = get_builder(name)
    options = list(inspect.signature(builder).parameters)[len(args):]
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise ModelError(
            f"Unknown option for model {name!r}. Expected some of: {', '.join(options)}. "
            f"Received: {', '.join(f'{key}={overrides[key]!r}' for key in unknown)}"
        )
    return builder(*args, **{**defaults, **overrides})
