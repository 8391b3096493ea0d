"""SimCLR: self-supervised pretraining, then a linear probe and fine-tuning on a few labels.

    kvision train simclr                                   # resnet20 on Fashion-MNIST, 1% and 10% of the labels
    kvision train simclr --model resnet56 --epochs 200 --batch-size 512
    kvision train simclr --shares 0.01 0.05 0.1            # re-run: finished phases are skipped, 5% is added

Phases, each recorded in <run-dir>/results.json when done and skipped when
the recipe runs again (a killed training resumes at its last epoch). A run
directory keeps its settings: only ``--shares`` (and paths) may change, or
``--overwrite`` deletes it and starts afresh.

1. ``pretrain``: SimCLR (Chen et al. 2020, https://arxiv.org/abs/2002.05709)
   on the training images without their labels; the encoder (the classifier
   ``--model`` without its logits layer) is <run-dir>/pretrain/checkpoints/last.keras.
   As in the paper the default encoder is a ResNet and its representation
   the globally average-pooled feature map (64 numbers for ResNet-20). The
   ``cnn``'s representation is the output of a 256-unit dense layer over the
   flattened feature maps: a random projection of them that a linear probe
   already reads at 81% on Fashion-MNIST, so there is little for SimCLR to add.
2. ``probe_simclr`` / ``probe_random``: linear-probe test accuracy of the
   SimCLR encoder and of the same architecture at its random initialisation
   (initialised with the same seed): one softmax layer on frozen features.
3. For each ``--shares`` s, a class-balanced, seeded s-share of the training
   labels: ``finetune_<s>`` fine-tunes the SimCLR encoder with a new head
   (``kvision.train.finetune.fine_tune``: the head alone on the frozen encoder
   for ``--head-share`` of the epochs, then everything, BatchNorm frozen) and
   ``scratch_<s>`` trains the same architecture from random weights, with the
   same epochs, batch, optimizer and augmentation. Budget: ``--finetune-epochs``,
   raised so that a run takes at least ``--min-steps`` steps (1% of
   Fashion-MNIST is only 4 batches of 128 an epoch), capped at ``--max-epochs``
   (``kvision.train.epoch_budget``); the batch shrinks to the subset when the
   subset is smaller.

Defaults follow the SimCLR repository's CIFAR-10 command (colour jitter
strength 0.5, temperature 0.5, no blur), with Adam(W) instead of LARS for
batches of hundreds, and crops of at least 20% of the area for 28×28 images.

Outputs: <run-dir>/ (config.json, results.json, pretrain/, finetune_<s>/,
scratch_<s>/: TensorBoard logs, history.csv, checkpoints) and a printed table
of test accuracies and seconds per phase.
"""

import time
from functools import partial
from pathlib import Path

import keras

from kvision.data import channel_stats, labelled_subset, load_dataset
from kvision.evaluate import accuracy
from kvision.models import build, get_builder, list_models
from kvision.models.common import classifier_backbone
from kvision.recipes.common import (add_data_arguments, add_run_arguments, add_speed_arguments, announce_model,
                                    open_recipe_run, print_summary, recipe_parser, run_recipe)
from kvision.train import epoch_budget, fine_tune, fit_or_load, get_strategy
from kvision.train.engine import OPTIMIZERS
from kvision.train.records import run_phase, save_results
from kvision.train.simclr import fit_simclr, linear_probe

# Flags of this recipe that change no result (more shares add to them): a run directory accepts them changed.
NEUTRAL_FLAGS = ("shares", "data_dir", "xla")


def build_parser():
    parser = recipe_parser(__doc__)
    add_data_arguments(parser, "fashion_mnist, mnist, cifar10 or cifar100")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="resnet20", help=f"one of: {', '.join(list_models('classifier'))}")
    model.add_argument("--projection-dim", type=int, default=128, help="output size of the projection head")
    model.add_argument("--hidden-dim", type=int,
                       help="hidden width of the projection head; None: the encoder's feature size")

    pretrain = parser.add_argument_group("pretraining")
    pretrain.add_argument("--epochs", type=int, default=50, help="SimCLR epochs")
    pretrain.add_argument("--pretrain-images", type=int, help="pretrain on the first N training images; None: all")
    pretrain.add_argument("--batch-size", type=int, default=256, help="per replica; negatives: 2 × global batch − 2")
    pretrain.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="of the pretraining")
    pretrain.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, cosine decay")
    pretrain.add_argument("--weight-decay", type=float, default=1e-4, help="decoupled for adamw")
    pretrain.add_argument("--warmup-epochs", type=float, default=0.0, help="linear learning-rate warm-up")
    pretrain.add_argument("--temperature", type=float, default=0.5, help="NT-Xent temperature")
    pretrain.add_argument("--crop-scale", type=float, default=0.2, help="smallest crop, share of the image area")
    pretrain.add_argument("--jitter", type=float, default=0.5, help="colour jitter strength; 0: off")
    pretrain.add_argument("--blur", type=float, default=0.0, help="probability of a Gaussian blur")
    pretrain.add_argument("--noise", type=float, default=0.0, help="std of Gaussian pixel noise, 0..255 scale")
    pretrain.add_argument("--no-flip", dest="flip", action="store_false",
                          help="no horizontal flips (pretraining and fine-tuning)")

    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--probe-epochs", type=int, default=30, help="epochs of the linear probes")
    evaluation.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.1],
                            help="shares of the training labels to fine-tune on")
    evaluation.add_argument("--finetune-epochs", type=int, default=20,
                            help="epochs of both arms, before the two limits below")
    evaluation.add_argument("--min-steps", type=int, default=500, help="more epochs, up to this many steps")
    evaluation.add_argument("--max-epochs", type=int, default=100, help="but never more epochs than this")
    evaluation.add_argument("--head-share", type=float, default=0.2,
                            help="share of the fine-tuning epochs that train the head alone")
    evaluation.add_argument("--finetune-batch-size", type=int, default=128, help="per replica")
    evaluation.add_argument("--finetune-lr", type=float, default=1e-3,
                            help="Adam learning rate from scratch and when fine-tuning everything")
    evaluation.add_argument("--head-lr", type=float, default=1e-2, help="Adam learning rate of the head phase")
    evaluation.add_argument("--crop-padding", type=int, default=0, help="pad-and-crop augmentation of both arms")
    add_speed_arguments(parser, profile=False)

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, subsets, shuffling and augmentation")
    run.add_argument("--run-dir", help="all outputs; a re-run resumes here; None: runs/<dataset>_<model>_simclr")
    add_run_arguments(run)
    return parser


def run(args, *, rules):
    """Pretrain, probe, fine-tune and compare for parsed ``args``; ``rules`` from ``run_recipe``."""
    get_builder(args.model, "classifier")  # fail on an unknown name before loading any data
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    train, test = dataset.train, dataset.test
    mean, std = channel_stats(train[0])

    def encoder_fn():
        return classifier_backbone(build(args.model, dataset.image_shape, 1, mean=mean, std=std),
                                   name=f"{args.model}_backbone")

    def classifier_fn():
        return build(args.model, dataset.image_shape, dataset.num_classes, mean=mean, std=std)

    announce_model(f"{args.model} encoder", encoder_fn())  # fails on an image size it cannot take, before any output
    subsets = {share: labelled_subset(*train, share, seed=args.seed) for share in args.shares}
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_{args.model}_simclr")
    results = open_recipe_run(run_dir, args, rules, strategy=strategy)
    phase = partial(run_phase, run_dir, results, phases=results.setdefault("phases", {}))
    print(f"data: {dataset.name} from {dataset.origin}: {len(train[0])} train (labels unused in pretraining), "
          f"{len(test[0])} test, {dataset.image_shape}")

    unlabelled = train[0][: args.pretrain_images]
    start = time.time()
    pretrained = fit_simclr(  # a finished run is loaded, not trained again
        encoder_fn, unlabelled, run_dir=run_dir / "pretrain", epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, learning_rate=args.lr, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, temperature=args.temperature, projection_dim=args.projection_dim,
        hidden_dim=args.hidden_dim, seed=args.seed, mixed_precision=args.mixed_precision, xla=args.xla,
        strategy=strategy,
        augmentation=dict(crop_scale=(args.crop_scale, 1.0), flip=args.flip, jitter=args.jitter,
                          blur_probability=args.blur, noise=args.noise),
    )
    encoder_path = run_dir / "pretrain" / "checkpoints" / "last.keras"
    phase("pretrain", lambda: {
        "epochs": args.epochs,
        "images": len(unlabelled),
        "loss": pretrained.history.get("loss", [None])[-1],
        "contrastive_accuracy": pretrained.history.get("contrastive_accuracy", [None])[-1],
        "encoder": str(encoder_path),
    }, start=start)

    def random_encoder():
        keras.utils.set_random_seed(args.seed)  # initialised with the seed pretraining started from
        return encoder_fn()

    phase("probe_simclr", lambda: {
        "test_accuracy": linear_probe(pretrained.model, train, test, epochs=args.probe_epochs)})
    phase("probe_random", lambda: {
        "test_accuracy": linear_probe(random_encoder(), train, test, epochs=args.probe_epochs)})

    for share, subset in subsets.items():
        batch_size, epochs = epoch_budget(len(subset[0]), args.finetune_batch_size, args.finetune_epochs,
                                          replicas=strategy.num_replicas_in_sync, min_steps=args.min_steps,
                                          max_epochs=args.max_epochs)
        head_epochs = round(args.head_share * epochs)
        fit_options = dict(batch_size=batch_size, optimizer="adam", crop_padding=args.crop_padding, flip=args.flip,
                           seed=args.seed, mixed_precision=args.mixed_precision, xla=args.xla, strategy=strategy)
        labels = {"labels": len(subset[0]), "epochs": epochs, "batch_size": batch_size}

        def fine_tuned():
            result = fine_tune(encoder_path, subset, run_dir=run_dir / f"finetune_{share:g}",
                               num_classes=dataset.num_classes, head_epochs=head_epochs, epochs=epochs - head_epochs,
                               head_learning_rate=args.head_lr, learning_rate=args.finetune_lr, **fit_options)
            return {**labels, "head_epochs": head_epochs, "test_accuracy": accuracy(result.model, *test)}

        def from_scratch():
            result = fit_or_load(classifier_fn, subset, run_dir=run_dir / f"scratch_{share:g}", epochs=epochs,
                                 learning_rate=args.finetune_lr, **fit_options)
            return {**labels, "test_accuracy": accuracy(result.model, *test)}

        phase(f"finetune_{share:g}", fine_tuned)
        phase(f"scratch_{share:g}", from_scratch)

    results["summary"] = summarise(results["phases"], args, dataset, run_dir)
    save_results(run_dir, results)
    print_table(results["phases"], args)
    return print_summary(results["summary"], run_dir=run_dir)


def summarise(phases, args, dataset, run_dir):
    """The comparisons the recipe is for: SimCLR vs random init (probe) and vs from scratch (per share)."""
    simclr, random = phases["probe_simclr"]["test_accuracy"], phases["probe_random"]["test_accuracy"]
    shares = {}
    for share in args.shares:
        tuned, scratch = phases[f"finetune_{share:g}"], phases[f"scratch_{share:g}"]
        shares[f"{share:g}"] = {
            "labels": tuned["labels"], "epochs": tuned["epochs"],
            "finetune_accuracy": tuned["test_accuracy"], "scratch_accuracy": scratch["test_accuracy"],
            "gain_points": round(100 * (tuned["test_accuracy"] - scratch["test_accuracy"]), 2),
        }
    return {
        "model": args.model,
        "dataset": dataset.name,
        "pretrain_epochs": args.epochs,
        "linear_probe": {"simclr": simclr, "random_init": random, "gain_points": round(100 * (simclr - random), 2)},
        "shares": shares,
        "seconds": round(sum(phase["seconds"] for phase in phases.values()), 1),
        "run_dir": str(run_dir),
    }


def print_table(phases, args):
    rows = [("pretrain (SimCLR, no labels)", None, phases["pretrain"]),
            ("linear probe: SimCLR encoder", None, phases["probe_simclr"]),
            ("linear probe: random-init encoder", None, phases["probe_random"])]
    for share in args.shares:
        for arm, label in (("finetune", "fine-tuned SimCLR"), ("scratch", "from scratch")):
            phase = phases[f"{arm}_{share:g}"]
            detail = f"{phase['labels']} labels, {phase['epochs']} epochs"
            rows.append((f"{label}, {100 * share:g}% labels", detail, phase))
    print(f"\n{'phase':<36} {'budget':<28} {'test accuracy':>13} {'seconds':>9}")
    for name, detail, phase in rows:
        score = phase.get("test_accuracy")
        shown = "-" if score is None else f"{score:.4f}"
        print(f"{name:<36} {detail or '':<28} {shown:>13} {phase['seconds']:>9.1f}")
    print()


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    return run_recipe(run, build_parser(), argv, may_change=NEUTRAL_FLAGS)


if __name__ == "__main__":
    main()
