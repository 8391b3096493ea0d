"""Transfer learning: fine-tune a pretrained backbone on your images, or measure what pretraining buys with few labels.

    kvision train transfer --backbone EfficientNetB0 --dataset folder --data-dir ~/photos --image-size 224
    kvision train transfer --backbone ResNet50V2 --weights ~/resnet50v2_notop.h5 --dataset tfds:tf_flowers \
        --image-size 224 --head-lr 0.01 --finetune-lr 0.001
    kvision train transfer                                   # the study: cnn on Fashion-MNIST, classes 0-4 → 5-9
    kvision train transfer --model resnet20 --shares 0.01 0.05 0.2
    kvision train transfer --trainable head --epochs 0       # linear probe of the pretrained features

**Fine-tuning** (``--backbone``): a Keras Applications backbone
(``EfficientNetB0``, ``ResNet50V2``, ``MobileNetV2`` …, with ``--weights
imagenet`` — Keras downloads them — or a local weights file of the model
without its top), or a ``.keras`` backbone or kvision classifier, gets a new
head for every class of ``--dataset`` — any source of
the classification recipe: in memory, an image folder, TFRecord shards or
``tfds:NAME``, streamed from disk — and is fine-tuned on its training split
(``kvision.train.fine_tune``: the head for ``--head-epochs`` at
``--head-lr`` on the frozen backbone, then the ``--trainable`` stages with it
for ``--epochs`` at ``--finetune-lr``, BatchNormalization frozen; the best
validation epoch is kept). Streamed images of 64+ px train on Inception crops
(random-resized crop + flip) and are evaluated and served on the central
87.5 % (``--crop``). The test split is evaluated once and the model exported
like the classification recipe's (``--export-dir``, verified, BLESSED).
ImageNet backbones usually want lower rates than the defaults, which suit the
study below (e.g. ``--head-lr 0.01 --finetune-lr 0.001``, the tenfold drop of
the Keras transfer-learning guide).

**The few-label study** (no ``--backbone``; an in-memory dataset):

1. Pretrain ``--model`` on the training images of ``--source-classes``
   (``--validation-size`` of them held out to pick the best epoch).
2. For each share of ``--shares``, take that class-balanced, seeded share of
   the training images of ``--target-classes`` as the labelled data, and on it
   * fine-tune the pretrained backbone (``kvision.train.fine_tune``): a new
     head on the frozen backbone for ``--head-epochs`` at ``--head-lr``, then
     the ``--trainable`` stages with it for ``--epochs`` at ``--finetune-lr``,
     BatchNormalization frozen. The default ``--finetune-lr`` is scratch's
     rate, not a tenth of it: Fashion-MNIST's classes 0–4 (tops, trousers,
     dresses, coats) share little with 5–9 (sandals, shirts, sneakers, bags,
     boots), and with 10% of the labels a tenth of the rate lost to scratch
     (93.4% vs 95.5%) where the same rate beat it (96.5%);
   * train the same architecture from scratch for ``--head-epochs + --epochs``
     epochs at ``--lr``: same labels, augmentation and epoch budget.
3. Evaluate both on every test image of the target classes.

No validation data is carved from a share: each run trains a fixed budget
and its last epoch is evaluated, so the test images choose nothing. A small
share has few optimisation steps per epoch, so both runs of a share train
``scale ×`` the epochs above, ``scale = ceil(--min-steps / (steps per epoch ×
(--head-epochs + --epochs)))`` clipped to ``[1, --max-scale]`` (e.g. 1% of
Fashion-MNIST's 30 000 target images: 300 labels, 2 steps of 128 per epoch;
``kvision.train.epoch_budget`` with ``multiple_of``); a share smaller than one
batch trains on batches of all its labels.

Re-running with the same ``--run-dir`` resumes: finished runs are loaded,
not trained again (an interrupted one resumes at its last epoch), the
pretraining and shares already in results.json are kept, and other training
settings than ``--shares`` are refused (use a new ``--run-dir``, or
``--overwrite`` to start afresh).

Outputs of the study: ``<run-dir>/`` config.json, pretrain/, share_<s>/finetune/{head,finetune}/,
share_<s>/scratch/ (TensorBoard logs, checkpoints, history.csv each) and
results.json; the table of results is printed. Of fine-tuning: ``<run-dir>/``
config.json, head/ and finetune/ (logs, checkpoints, history each),
evaluation/, and the export under ``<export-dir>/<name>/<version>/``.
"""

import time
from pathlib import Path

from kvision.data import channel_stats, labelled_subset, load_dataset, select_classes, train_validation_split
from kvision.data.sources import IN_MEMORY_NAMES
from kvision.errors import DataError
from kvision.evaluate import accuracy
from kvision.models import build, get_builder, list_models
from kvision.recipes.classification import (add_crop_arguments, add_stream_arguments, default_name, evaluate_test,
                                            export_trained, prepare_data, summarise)
from kvision.recipes.common import (add_data_arguments, add_export_arguments, add_run_arguments, add_speed_arguments,
                                    announce_model, check_export_arguments, finish, open_recipe_run, recipe_parser,
                                    run_recipe, summary_table)
from kvision.train import epoch_budget, fit_or_load, get_strategy, is_chief, result_checkpoint
from kvision.train.engine import OPTIMIZERS
from kvision.train.finetune import APPLICATIONS, check_trainable, fine_tune, load_backbone
from kvision.train.records import run_phase, save_results


def trainable_arg(value):
    """``--trainable``: all, head or a number of stages."""
    return int(value) if value.isdigit() else value


def size_arg(value):
    """``--validation-size``: a count (``3000``) or a fraction (``0.1``)."""
    return float(value) if "." in value else int(value)


def build_parser():
    parser = recipe_parser(__doc__)
    data = add_data_arguments(parser, "any labelled dataset of the classification recipe")
    data.add_argument("--source-classes", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="pretraining classes")
    data.add_argument("--target-classes", type=int, nargs="+", default=[5, 6, 7, 8, 9], help="fine-tuning classes")
    data.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="labelled shares of the target training images")
    data.add_argument("--validation-size", type=size_arg, default=0.1,
                      help="images held out, a count or a fraction: of the source classes in the study, of an "
                           "in-memory training split when fine-tuning")
    add_stream_arguments(data)

    model = parser.add_argument_group("model")
    model.add_argument("--backbone", help="fine-tune this pretrained backbone on every class of --dataset and export "
                                          f"it: a Keras Applications model ({', '.join(APPLICATIONS)}), a .keras "
                                          "backbone or classifier file, or a kvision model name (default: the study)")
    model.add_argument("--weights", help="a Keras Applications backbone's weights: imagenet (Keras downloads them), a "
                                         "local weights file of the model without its top, or random (default: imagenet)")
    model.add_argument("--model", default="cnn", help=f"the study's model, one of: {', '.join(list_models('classifier'))}")
    model.add_argument("--trainable", type=trainable_arg, default="all", help="what fine-tuning unfreezes: all, head or the last N stages")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout before the new head")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--pretrain-epochs", type=int, default=10, help="epochs of pretraining on the source classes")
    optim.add_argument("--head-epochs", type=int, default=2, help="phase 1 of fine-tuning, before scaling")
    optim.add_argument("--epochs", type=int, default=8, help="phase 2 of fine-tuning, before scaling")
    optim.add_argument("--lr", type=float, default=0.05, help="pretraining and from-scratch peak learning rate")
    optim.add_argument("--head-lr", type=float, default=0.05, help="phase 1")
    optim.add_argument("--finetune-lr", type=float, default=0.05, help="phase 2; the source and target classes share little, so the backbone has to move")
    optim.add_argument("--min-steps", type=int, default=1000, help="optimisation steps a share's runs get at least, up to --max-scale")
    optim.add_argument("--max-scale", type=int, default=20, help="most a share's epochs are multiplied by")
    optim.add_argument("--batch-size", type=int, default=128, help="per replica")
    optim.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="the optimizer of every phase")
    optim.add_argument("--weight-decay", type=float, default=1e-4, help="L2 coefficient (decoupled for adamw)")

    augment = parser.add_argument_group("augmentation")
    add_crop_arguments(augment)
    augment.add_argument("--crop-padding", type=int, default=0, help="pad-and-random-crop padding, pixels")
    augment.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")

    add_speed_arguments(parser, profile=False)
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds the label shares, weights and shuffling")
    run.add_argument("--run-dir", help="where everything goes; a re-run resumes from here "
                                       "(default: runs/transfer_<dataset>_<model or backbone>)")
    run.add_argument("--name", help="fine-tuning: the served model name (default: <dataset>_<backbone>)")
    add_run_arguments(run)
    add_export_arguments(parser)
    return parser


def backbone_weights(args):
    """``load_backbone``'s ``weights`` of ``--backbone``/``--weights``: ImageNet by default for Keras Applications."""
    if args.backbone not in APPLICATIONS:
        return args.weights
    return {None: "imagenet", "random": None}.get(args.weights, args.weights)


def fine_tune_backbone(args, *, rules):
    """Fine-tune ``--backbone`` on every class of ``--dataset``, evaluate on its test split and export; returns the summary.

    The backbone is built (ImageNet weights fetched) and the data opened and
    sampled before the run directory is written, so a missing download, a
    shape the backbone cannot take or an unreadable image stop the run first.
    """
    check_trainable(args.trainable)
    check_export_arguments(args)
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    weights = backbone_weights(args)
    data = prepare_data(args, lambda shape, classes: announce_model(
        args.backbone, load_backbone(args.backbone, shape, weights=weights)))
    label = Path(args.backbone).stem.lower()
    run_dir = Path(args.run_dir or f"runs/transfer_{default_name(args, label)}")
    args.name = args.name or default_name(args, label)  # recorded: `kvision runs` finds the export
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    start = time.time()
    result = fine_tune(
        args.backbone, data.train, data.validation, run_dir=run_dir, num_classes=data.dataset.num_classes,
        input_shape=data.image_shape, weights=weights, dropout=args.dropout, head_epochs=args.head_epochs,
        epochs=args.epochs, head_learning_rate=args.head_lr, learning_rate=args.finetune_lr, trainable=args.trainable,
        batch_size=args.batch_size, optimizer=args.optimizer, weight_decay=args.weight_decay,
        crop_padding=args.crop_padding, flip=args.flip, seed=args.seed, mixed_precision=args.mixed_precision,
        xla=args.xla, strategy=strategy, **data.fit_options(args),
    )
    train_seconds = time.time() - start
    report = evaluate_test(result.model, data, run_dir)
    export = export_trained(result.model, data, args, report, name=args.name) if is_chief() else None
    return finish(summarise(data, report, run_dir=run_dir, train_seconds=train_seconds, backbone=args.backbone,
                            weights=str(weights) if weights else "random"), export, run_dir=run_dir)


def run(args, *, rules):
    """Fine-tuning with ``--backbone``, else the study; returns the summary or results it writes.

    ``rules``: what a re-run may change (``run_recipe``).
    """
    return (fine_tune_backbone if args.backbone else study)(args, rules=rules)


def study(args, *, rules):
    """Pretrain, fine-tune and train from scratch for every share; returns the results it writes."""
    get_builder(args.model, "classifier")  # fail on a bad name or option before loading any data
    check_trainable(args.trainable)
    if args.dataset not in (*IN_MEMORY_NAMES, "image_folder"):
        raise DataError(f"The few-label study holds its dataset in memory: expected one of "
                        f"{', '.join(IN_MEMORY_NAMES)} or image_folder. Received: --dataset {args.dataset} "
                        f"(to fine-tune a pretrained backbone on it, pass --backbone)")
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    source, target = (select_classes(*dataset.train, c) for c in (args.source_classes, args.target_classes))
    source_test, target_test = (select_classes(*dataset.test, c) for c in (args.source_classes, args.target_classes))
    subsets = {share: labelled_subset(*target, share, seed=args.seed) for share in args.shares}
    shape, replicas = dataset.image_shape, strategy.num_replicas_in_sync
    run_dir = Path(args.run_dir or f"runs/transfer_{args.dataset}_{args.model}")
    results = open_recipe_run(run_dir, args, rules, strategy=strategy)
    common = dict(optimizer=args.optimizer, weight_decay=args.weight_decay, crop_padding=args.crop_padding,
                  flip=args.flip, seed=args.seed, mixed_precision=args.mixed_precision, xla=args.xla, strategy=strategy)

    train, validation = train_validation_split(*source, args.validation_size, seed=args.seed)
    mean, std = channel_stats(train[0])
    validation = validation if len(validation[0]) else None
    start = time.time()
    pretrained = fit_or_load(
        lambda: build(args.model, shape, len(args.source_classes), mean=mean, std=std), train, validation,
        run_dir=run_dir / "pretrain", epochs=args.pretrain_epochs, batch_size=args.batch_size,
        learning_rate=args.lr, **common,
    )
    run_phase(run_dir, results, "pretrain", lambda: {
        "classes": [dataset.class_names[c] for c in args.source_classes], "images": len(train[0]),
        "test_accuracy": accuracy(pretrained.model, *source_test),
    }, start=start)
    checkpoint = result_checkpoint(run_dir / "pretrain", validation is not None)

    done = {entry["share"]: entry for entry in results.get("shares", [])}
    cycle = args.head_epochs + args.epochs  # the epochs a share's budget scales
    for share in args.shares:
        if share in done:
            continue
        labelled = subsets[share]
        batch_size, epochs = epoch_budget(len(labelled[1]), args.batch_size, cycle, replicas=replicas,
                                          min_steps=args.min_steps, max_epochs=args.max_scale * cycle,
                                          multiple_of=cycle)
        scale = epochs // cycle
        share_dir = run_dir / f"share_{share:g}"
        start = time.time()
        tuned = fine_tune(
            checkpoint, labelled, run_dir=share_dir / "finetune", num_classes=len(args.target_classes),
            dropout=args.dropout, head_epochs=args.head_epochs * scale, epochs=args.epochs * scale,
            head_learning_rate=args.head_lr, learning_rate=args.finetune_lr, trainable=args.trainable,
            batch_size=batch_size, **common,
        )
        tuned_seconds, start = time.time() - start, time.time()
        share_mean, share_std = channel_stats(labelled[0])
        scratch = fit_or_load(
            lambda: build(args.model, shape, len(args.target_classes), mean=share_mean, std=share_std), labelled,
            run_dir=share_dir / "scratch", epochs=epochs, batch_size=batch_size,
            learning_rate=args.lr, **common,
        )
        entry = {
            "share": share, "labels": len(labelled[1]), "batch_size": batch_size * replicas,
            "epochs": {"head": args.head_epochs * scale, "finetune": args.epochs * scale,
                       "scratch": epochs},
            "finetune_accuracy": accuracy(tuned.model, *target_test),
            "scratch_accuracy": accuracy(scratch.model, *target_test),
            "seconds": {"finetune": round(tuned_seconds, 1), "scratch": round(time.time() - start, 1)},
        }
        entry["gain"] = entry["finetune_accuracy"] - entry["scratch_accuracy"]
        done[share] = entry
        results.update(dataset=dataset.name, model=args.model, test_images=len(target_test[1]),
                       target_classes=[dataset.class_names[c] for c in args.target_classes],
                       shares=sorted(done.values(), key=lambda e: e["share"]))
        save_results(run_dir, results)  # after every share, so an interrupted run keeps the finished ones
    print_table(results)
    print(summary_table({f"{entry['share']:g}_gain": entry["gain"] for entry in results["shares"]}, run_dir=run_dir))
    return results


def print_table(results):
    print(f"\n{results['model']} pretrained on {', '.join(results['pretrain']['classes'])} "
          f"(test accuracy {results['pretrain']['test_accuracy']:.4f}); "
          f"{len(results['target_classes'])} target classes, {results['test_images']} test images")
    print(f"{'share':>7} {'labels':>7} {'fine-tune':>10} {'scratch':>8} {'gain':>7} {'seconds':>13}")
    for e in results["shares"]:
        seconds = f"{e['seconds']['finetune']:.0f}+{e['seconds']['scratch']:.0f}"
        print(f"{e['share']:>7.1%} {e['labels']:>7} {e['finetune_accuracy']:>10.4f} {e['scratch_accuracy']:>8.4f} "
              f"{e['gain']:>+7.4f} {seconds:>13}")


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    # More shares add to the results; the others are kept.
    return run_recipe(run, build_parser(), argv, may_change=("shares",))


if __name__ == "__main__":
    main()
