"""One registry of model builders, looked up by name.

Builders are plain functions ``build_x(input_shape, num_classes, **options)``
returning a functional ``keras.Model``. A registered name binds a builder to a
dict of default options (a *variant*), so ``resnet56`` is ``build_cifar_resnet``
with ``depth=56``; ``build(name, ..., **overrides)`` merges the overrides on top.
Each name also has a task (``"classifier"``, ``"gan"``), so a recipe lists and
accepts only the models it can train.
"""

import difflib
import inspect

from kvision.errors import ModelError

_REGISTRY = {}


def register_model(name, builder=None, *, task="classifier", **defaults):
    """Register ``builder`` under ``name`` for ``task`` with default keyword options.

    Usable directly, ``register_model("resnet20", build_cifar_resnet, depth=20)``,
    or as a decorator, ``@register_model("cnn")``.
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


def build(name, /, input_shape, num_classes, **overrides):
    """Build the registered model ``name`` for ``input_shape`` and ``num_classes``.

    ``overrides`` replace the variant's default options (``name`` among them: the
    registered name is positional-only); an option the builder does not take
    raises ``ModelError`` listing the ones it does.
    """
    builder, defaults = get_builder(name)
    options = [
        p for p in inspect.signature(builder).parameters if p not in ("input_shape", "num_classes")
    ]
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise ModelError(
            f"Unknown option for model {name!r}. Expected some of: {', '.join(options)}. "
            f"Received: {', '.join(f'{key}={overrides[key]!r}' for key in unknown)}"
        )
    return builder(input_shape=input_shape, num_classes=num_classes, **{**defaults, **overrides})
