"""One registry of model builders, looked up by name.

Builders are plain functions ``build_x(input_shape, num_classes, **options)``
returning a functional ``keras.Model``. A registered name binds a builder to a
dict of default options (a *variant*), so ``resnet56`` is ``build_cifar_resnet``
with ``depth=56``; ``build(name, ..., **overrides)`` merges the overrides on top.
"""

import difflib
import inspect

from kvision.errors import ModelError

_REGISTRY = {}


def register_model(name, builder=None, **defaults):
    """Register ``builder`` under ``name`` with default keyword options.

    Usable directly, ``register_model("resnet20", build_cifar_resnet, depth=20)``,
    or as a decorator, ``@register_model("cnn")``.
    """
    if builder is None:
        return lambda fn: register_model(name, fn, **defaults)
    if name in _REGISTRY:
        raise ModelError(f"Each model name is registered once. Received: name={name!r}")
    _REGISTRY[name] = (builder, dict(defaults))
    return builder


def list_models():
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_builder(name):
    """The ``(builder, defaults)`` pair registered under ``name``."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"Unknown model name.{hint} Expected one of: {', '.join(list_models())}. "
            f"Received: name={name!r}"
        )
    return _REGISTRY[name]


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
