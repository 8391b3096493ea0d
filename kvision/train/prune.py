"""Magnitude pruning with a polynomial sparsity schedule, for Keras 3 models.

Zhu & Gupta, "To prune, or not to prune" (https://arxiv.org/abs/1710.01878):
while a trained model is fine-tuned, the smallest-magnitude weights of each
layer are set to zero, the pruned share rising as
``s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³`` (fast at first, slowly near
the target, when fewer redundant weights are left), and the network
recovers from each step before the next.

tensorflow-model-optimization's ``prune_low_magnitude`` wraps tf-keras
(Keras 2) layers and does not accept Keras 3 models, which is why this
exists: a callback, no layer wrappers, so the pruned model stays the same
functional model and saves, exports and converts to TFLite as any other.
Zeros do not make a dense file smaller by themselves; they make it compress
well, so ``model_sizes`` reports the gzip size alongside the raw one.
"""

import gzip
from pathlib import Path

import keras
import numpy as np

from kvision.errors import ModelError
from kvision.models.common import is_positive_int, require


def prunable_kernels(model, layers=None):
    """``{layer name: kernel variable}`` of the layers pruning touches, in model order.

    By default every layer with a ``kernel`` (convolutions, dense layers)
    except the final ``"logits"`` layer: it holds few weights and every one
    of them feeds a class score directly, so pruning it saves little and
    costs accuracy. ``layers`` names the layers explicitly.
    """
    kernels = {
        layer.name: layer.kernel
        for layer in model._flatten_layers(include_self=False)
        if getattr(layer, "kernel", None) is not None
    }
    if layers is None:
        chosen = {name: kernel for name, kernel in kernels.items() if name != "logits"}
        require(chosen, "Expected a model with convolution or dense kernels besides its logits.",
                model=model.name, kernels=list(kernels))
        return chosen
    unknown = sorted(set(layers) - set(kernels))
    require(layers and not unknown, f"Pruned layers must be layers of {model.name!r} with a kernel, "
            f"among: {', '.join(kernels)}.", layers=unknown or layers)
    return {name: kernel for name, kernel in kernels.items() if name in layers}


def sparsity(model, layers=None):
    """The share of exactly-zero weights in ``model``'s prunable kernels (see ``prunable_kernels``)."""
    values = [keras.ops.convert_to_numpy(kernel) for kernel in prunable_kernels(model, layers).values()]
    return float(sum(np.count_nonzero(v == 0) for v in values) / sum(v.size for v in values))


def magnitude_mask(weights, share):
    """A 0/1 mask of ``weights``' shape zeroing its ``round(share × size)`` smallest magnitudes."""
    mask = np.ones(weights.size, weights.dtype)
    mask[np.argsort(np.abs(weights), axis=None, kind="stable")[: round(share * weights.size)]] = 0
    return mask.reshape(weights.shape)


def model_sizes(model_or_file):
    """``{"bytes", "gzip_bytes"}``: the size of a model, raw and gzip-compressed (level 9).

    Args:
        model_or_file: a ``keras.Model``, measured by its weights (the arrays
            back to back, in their dtypes: what its ``.keras`` file holds
            besides the architecture, without optimizer state); the path of a
            model file (``.keras``, ``.tflite``, …); or a file's bytes (e.g. a
            TFLite flatbuffer from ``kvision.export.convert``).
    """
    if isinstance(model_or_file, keras.Model):
        content = b"".join(np.ascontiguousarray(w).tobytes() for w in model_or_file.get_weights())
    elif isinstance(model_or_file, bytes):
        content = model_or_file
    elif Path(model_or_file).is_file():
        content = Path(model_or_file).read_bytes()
    else:
        raise ModelError(f"Expected a Keras model, a model file or its bytes. Received: {model_or_file!r}")
    return {"bytes": len(content), "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0))}


class KernelMask(keras.constraints.Constraint):
    """Multiplies a kernel by a 0/1 mask after every optimizer update (after any earlier constraint)."""

    def __init__(self, mask, previous=None):
        self.mask = mask
        self.previous = previous

    def __call__(self, w):
        return (w if self.previous is None else self.previous(w)) * self.mask


class MagnitudePruning(keras.callbacks.Callback):
    """Prunes the smallest-magnitude kernel weights of each layer to ``target_sparsity`` while training.

    Every ``frequency`` optimizer steps from ``begin_step`` to ``end_step``
    each layer's mask is recomputed to zero the scheduled share of its
    weights (per layer, so no layer is emptied). Between updates, and after
    ``end_step`` where the final mask stays, the mask is a constraint the
    optimizer applies after every step, inside the compiled train step:
    without it the optimizer's momentum would regrow pruned weights. Masks
    are not saved; a resumed run rebuilds them from the restored step and
    weights. On a training wrapper (``Distiller``, …) its ``.network`` is pruned.

    When fine-tuning with a validation set, pass ``restore_best=False`` to
    ``fit_classifier``: the best-accuracy epoch may come before the target
    sparsity is reached, and the run's ``last.keras`` is the pruned model.

    Args:
        target_sparsity: final share of zero weights per layer, in (0, 1).
        begin_step: optimizer step of the first pruning.
        end_step: step at which ``target_sparsity`` is reached; default: two
            thirds of the run, so the last third fine-tunes the final mask.
        frequency: optimizer steps between mask updates.
        initial_sparsity: sparsity applied at ``begin_step``.
        layers: names of the layers to prune; default: see ``prunable_kernels``.
    """

    def __init__(self, target_sparsity, *, begin_step=0, end_step=None, frequency=100, initial_sparsity=0.0,
                 layers=None):
        super().__init__()
        require(0 <= initial_sparsity <= target_sparsity < 1,
                "Expected 0 <= initial_sparsity <= target_sparsity < 1.",
                initial_sparsity=initial_sparsity, target_sparsity=target_sparsity)
        require(begin_step == 0 or is_positive_int(begin_step), "begin_step must be a step >= 0.",
                begin_step=begin_step)
        require(end_step is None or (is_positive_int(end_step) and end_step > begin_step),
                "end_step must be a step after begin_step.", begin_step=begin_step, end_step=end_step)
        require(is_positive_int(frequency), "frequency must be a positive number of steps.", frequency=frequency)
        self.target_sparsity = target_sparsity
        self.initial_sparsity = initial_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.layers = layers
        self.kernels = {}
        self.masks = {}
        self.applied = None

    def sparsity_at(self, step):
        """The scheduled sparsity after ``step`` optimizer steps: the value set at the last update step."""
        if step < self.begin_step:
            return 0.0
        last = min(step, self.end_step)
        if last < self.end_step:
            last -= (last - self.begin_step) % self.frequency
        progress = (last - self.begin_step) / (self.end_step - self.begin_step)
        return self.target_sparsity + (self.initial_sparsity - self.target_sparsity) * (1 - progress) ** 3

    def _step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        if self.end_step is None:
            steps = self.params.get("steps")
            if not steps:
                raise ModelError("MagnitudePruning needs end_step when the steps per epoch are unknown. "
                                 f"Received: steps={steps}")
            total = self.params["epochs"] * steps
            self.end_step = max(self.begin_step + 1, self.begin_step + round(2 * (total - self.begin_step) / 3))
        self.kernels = prunable_kernels(getattr(self.model, "network", self.model), self.layers)
        self.previous_constraints = {name: kernel.constraint for name, kernel in self.kernels.items()}
        with self.model.distribute_strategy.scope():
            for name, kernel in self.kernels.items():
                self.masks[name] = keras.Variable(
                    np.ones(kernel.shape), dtype=kernel.dtype, trainable=False, name=f"{name}_prune_mask"
                )
                kernel.constraint = KernelMask(self.masks[name], kernel.constraint)
        self.applied = None
        self._update_masks()

    def on_train_batch_end(self, batch, logs=None):
        self._update_masks()

    def _update_masks(self):
        """Re-mask every layer by magnitude when the schedule has moved since the last update."""
        share = self.sparsity_at(self._step())
        if share == self.applied:
            return
        for name, kernel in self.kernels.items():
            weights = keras.ops.convert_to_numpy(kernel)
            mask = magnitude_mask(weights, share)
            self.masks[name].assign(mask)
            kernel.assign(weights * mask)
        self.applied = share

    def on_train_end(self, logs=None):
        for name, kernel in self.kernels.items():
            kernel.constraint = self.previous_constraints[name]
