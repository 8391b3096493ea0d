"""Image captioning with visual attention (Show, Attend and Tell): data → vocabulary → training → BLEU → SavedModel.

    kvision train captioning                                  # scenes composed from Fashion-MNIST, offline
    kvision train captioning --dataset folder --data-dir ~/flickr8k --image-size 128 --backbone resnet20
    kvision train captioning --dataset coco_captions --image-size 128 --limit 20000 --backbone resnet20

Datasets:
- ``scenes`` (default): 2–4 Fashion-MNIST items on a 2×2 grid of a
  ``--canvas``-pixel image, captioned from what was placed where ("a sneaker
  to the left of a bag above a coat"). Written once to ``--data-dir`` as PNGs
  and captions files (train/validation scenes from Fashion-MNIST's training
  images, test scenes from its test images) and read back by the same loader
  as ``folder``. Fashion-MNIST is found locally as in fashion_mnist.py
  (``--items-dir`` to point at it).
- ``folder``: ``--data-dir`` with ``captions.tsv`` (``image_path<TAB>caption``,
  several lines per image allowed; split by a hash of the image path) or
  ``train.tsv`` + ``test.tsv`` (+ ``validation.tsv``).
- ``coco_captions``: TFDS (downloads COCO 2014 on first use); ``--limit`` images per split.

Reported on the test images, each captioned once and scored against all its
captions: BLEU-1..4 (in [0, 1]), exact match and, for scenes, the share of
placed items the caption names (``item_match``).

Outputs: <run-dir>/ (config.json, vocabulary.json, TensorBoard logs,
checkpoints, history.csv, evaluation/report.json, predictions.tsv,
attention.png) and <export-dir>/<name>/<version>/, a verified SavedModel whose
``serving_default`` maps encoded images (``image_bytes``, JPEG/PNG) to
``captions``; ``caption_beams`` returns every beam.
"""

import time
from pathlib import Path

from kvision.data import load_dataset
from kvision.data.captions import (
    coco_captions,
    fashion_mnist_scenes,
    load_caption_images,
    read_captions_dir,
)
from kvision.data.text import WordPieceVocabulary, load_vocabulary, pairs_fingerprint, save_vocabulary
from kvision.errors import DataError
from kvision.evaluate.captioning import evaluate_captioner
from kvision.models import build, get_builder, list_models
from kvision.models.decoding import Captioner
from kvision.recipes.common import (add_export_arguments, add_run_arguments, add_speed_arguments, announce_model,
                                    check_export_arguments, export_for_captioner, finish, open_recipe_run,
                                    recipe_parser, run_recipe, tensorboard_options,
                                    training_command)
from kvision.train import fit_captioner, get_strategy, is_chief, run_paths, worker_dir

DATASETS = ("scenes", "folder", "coco_captions")
PARITY_IMAGES = 32  # test images the exported SavedModel must caption exactly as Keras did
DECODING = ("beam_width", "length_penalty")  # used after training only: a finished run decodes and exports again


def build_parser():
    parser = recipe_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="scenes", choices=DATASETS, help="where the captioned images come from (see above)")
    data.add_argument("--data-dir", help="scenes: where they are written (default: data/fashion_mnist_scenes); "
                                         "folder: the captions directory")
    data.add_argument("--items-dir", help="scenes: a local Fashion-MNIST (default: the usual places)")
    data.add_argument("--scenes", type=int, default=20000, help="scenes: training scenes")
    data.add_argument("--validation-scenes", type=int, default=1000, help="scenes: validation scenes")
    data.add_argument("--test-scenes", type=int, default=2000, help="scenes: test scenes")
    data.add_argument("--canvas", type=int, default=64, help="scenes: image size in pixels")
    data.add_argument("--image-size", type=int, default=128, help="folder, coco_captions: images resized to N×N")
    data.add_argument("--grayscale", action="store_true", help="folder, coco_captions: one channel instead of RGB")
    data.add_argument("--limit", type=int, help="coco_captions: images read per split")
    data.add_argument("--max-length", type=int, default=24, help="most caption tokens, [END] included")
    data.add_argument("--vocabulary-size", type=int, default=5000, help="word pieces learned")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="show_attend_tell", help=f"one of: {', '.join(list_models('captioning'))}")
    model.add_argument("--backbone", default="cnn", help="any registered classifier; its last feature map is attended over")
    model.add_argument("--units", type=int, default=256, help="decoder state size")
    model.add_argument("--attention-regularization", type=float, default=1.0,
                       help="λ of the doubly stochastic attention loss, 0: off")
    model.add_argument("--dropout", type=float, default=0.3, help="decoder dropout")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=10, help="passes over the training captions")
    train.add_argument("--batch-size", type=int, default=64, help="global batch size")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of Adam, warm-up then cosine decay")
    add_speed_arguments(parser)

    decode = parser.add_argument_group("decoding")
    decode.add_argument("--beam-width", type=int, default=3, help="1: greedy")
    decode.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length-penalty exponent alpha")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds scenes, weights and shuffling")
    run.add_argument("--run-dir", help="logs, checkpoints, report; a killed run resumes from here (default: runs/<dataset>_<model>)")
    run.add_argument("--name", help="served model name (default: <dataset>_captioner)")
    add_run_arguments(run)
    export = add_export_arguments(parser, classifier=False, tflite=False, images=True)
    export.add_argument("--bless-min-bleu-4", type=float, help="bless only if the test BLEU-4 (0..1) reaches this")
    return parser


def load_splits(args):
    """``({split: CaptionSet}, dataset record)`` of the chosen dataset."""
    if args.dataset == "scenes":
        items = load_dataset("fashion_mnist", args.items_dir, download=False)
        directory = fashion_mnist_scenes(args.data_dir or "data/fashion_mnist_scenes", items, train=args.scenes,
                                         validation=args.validation_scenes, test=args.test_scenes, seed=args.seed,
                                         canvas=args.canvas)
        shape, origin = (args.canvas, args.canvas, 1), items.origin
    elif args.dataset == "folder":
        if args.data_dir is None:
            raise DataError("Expected --data-dir with the captions files for --dataset folder. Received: none")
        directory, shape, origin = Path(args.data_dir), (args.image_size, args.image_size, 1 if args.grayscale else 3), args.data_dir
    else:
        shape = (args.image_size, args.image_size, 1 if args.grayscale else 3)
        sets = {split: coco_captions(tfds_split, shape, limit=args.limit)
                for split, tfds_split in (("train", "train"), ("validation", "val"), ("test", "test"))}
        return sets, {"name": "coco_captions", "origin": "tfds:coco_captions"}
    splits = read_captions_dir(directory, seed=args.seed)
    sets = {split: load_caption_images(pairs, shape) for split, pairs in splits.items()}
    return sets, {"name": "Fashion-MNIST scenes" if args.dataset == "scenes" else "captions folder", "origin": origin}


def vocabulary(run_dir, train_set, args):
    """The run's caption vocabulary: read back when resuming, else learned from the training captions and saved."""
    path = Path(run_dir) / "vocabulary.json"
    if path.exists():
        return load_vocabulary(path)
    vocab = WordPieceVocabulary.from_texts([caption for _, caption in train_set.pairs],
                                           vocabulary_size=args.vocabulary_size, max_length=args.max_length)
    if is_chief():
        save_vocabulary(path, vocab)
    return vocab


def run(args, *, rules):
    """Train, evaluate and export for parsed ``args``; ``rules`` from ``run_recipe``."""
    get_builder(args.model, "captioning")  # fail on an unknown name or export flag before any work
    get_builder(args.backbone, "classifier")
    check_export_arguments(args)
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    sets, dataset = load_splits(args)
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_{args.model}")
    args.name = args.name or f"{args.dataset}_captioner"  # recorded: `kvision runs` finds the export
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    vocab = vocabulary(run_dir, sets["train"], args)
    shape = sets["train"].images.shape[1:]
    print(f"data: {dataset['name']} from {dataset['origin']}: "
          + ", ".join(f"{len(s.image_ids)} {split} images ({len(s.pairs)} captions)" for split, s in sets.items())
          + f"; vocabulary: {vocab.size} word pieces")

    def model_fn():
        return build(args.model, shape, vocab.size, backbone=args.backbone, units=args.units, dropout=args.dropout,
                     attention_regularization=args.attention_regularization)

    announce_model(f"{args.model} ({args.backbone} backbone)", model_fn())
    start = time.time()
    result = fit_captioner(
        model_fn, sets["train"], sets["validation"], vocab, run_dir=run_dir, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed, mixed_precision=args.mixed_precision,
        xla=args.xla, strategy=strategy, **tensorboard_options(args),
    )
    train_seconds = time.time() - start

    captioner = Captioner(result.model, vocab, beam_width=args.beam_width, alpha=args.length_penalty)
    start = time.time()
    with worker_dir(run_dir) as out_dir:  # every worker evaluates (collective evaluate); the chief's files are kept
        paths = run_paths(out_dir)
        report = evaluate_captioner(captioner, sets["test"], out_dir / "evaluation", scenes=args.dataset == "scenes",
                                    history_csv=paths["history"], log_dir=paths["logs"])
    evaluate_seconds = time.time() - start
    export = None
    if is_chief():
        export = export_for_captioner(
            captioner, args, name=args.name, images=sets["test"].images[:PARITY_IMAGES],
            report=report, training_command=training_command(),
            dataset={**dataset, "fingerprint": pairs_fingerprint(sets["train"].pairs)},
        )
    summary = {
        "model": args.model,
        "backbone": args.backbone,
        **{f"test_{key}": report[key] for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "exact_match", "item_match",
                                                  "token_accuracy") if key in report},
        "train_seconds": round(train_seconds, 1),
        "evaluate_seconds": round(evaluate_seconds, 1),
        "run_dir": str(run_dir),
        "report": str(run_dir / "evaluation" / "report.json"),
    }
    return finish(summary, export, run_dir=run_dir)


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    return run_recipe(run, build_parser(), argv, may_change=DECODING)


if __name__ == "__main__":
    main()
