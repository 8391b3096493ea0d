"""Knowledge distillation, then magnitude pruning: a small, fast classifier taught by a big one.

    kvision train distill                            # resnet56 teacher → resnet20 student, Fashion-MNIST
    kvision train distill --teacher runs/fashion_mnist_resnet56/checkpoints/best.keras
    kvision train distill --student cnn --alpha 0.5 --temperature 2 --sparsity 0.9

Four phases, each in its own subdirectory of --run-dir (TensorBoard logs,
checkpoints, history.csv); a phase a previous run finished is loaded, not
trained again, and a killed phase resumes at its last epoch:

    teacher/    the teacher on the labels (not with --teacher PATH, a .keras classifier)
    student/    the student on the labels alone
    distilled/  the same student (same seed and epochs) taught by the teacher: Hinton et al. 2015,
                https://arxiv.org/abs/1503.02531 (kvision.train.distill.Distiller)
    pruned/     the distilled student fine-tuned for --prune-epochs while its conv and dense kernels
                are pruned to --sparsity: Zhu & Gupta 2017, https://arxiv.org/abs/1710.01878
                (kvision.train.prune.MagnitudePruning)

Each model is measured on the test split: Keras and full-integer int8 TFLite
accuracy, parameters, sparsity, the float32 weights' and int8 .tflite file's sizes
(raw and gzip: pruned zeros only shrink the compressed file) and the int8
batch-1 latency (median, this machine's CPU). Outputs: <run-dir>/config.json,
<run-dir>/results.json, <phase>/model_int8.tflite, and a printed table.
"""

from pathlib import Path

import numpy as np

from kvision.data import channel_stats, labelled_subset, load_dataset, train_validation_split
from kvision.evaluate import accuracy
from kvision.export.tflite import TFLiteClassifier, convert
from kvision.export.verify import median_latency_ms
from kvision.models import build, get_builder, list_models
from kvision.recipes.common import (add_data_arguments, add_run_arguments, add_speed_arguments, announce_model,
                                    open_recipe_run, print_summary, recipe_parser, run_recipe)
from kvision.saving import load_model
from kvision.train import fit_or_load, get_strategy, is_chief, run_paths
from kvision.train.distill import Distiller, load_teacher
from kvision.train.prune import MagnitudePruning, model_sizes, sparsity
from kvision.train.records import save_results


def build_parser():
    parser = recipe_parser(__doc__)
    data = add_data_arguments(parser, "cifar10, cifar100, fashion_mnist or mnist")
    data.add_argument("--validation-size", type=int, default=5000, help="training examples held out")
    data.add_argument("--train-size", type=int, help="train on a class-balanced subset of about N examples, for quick runs")

    models = parser.add_argument_group("models")
    models.add_argument("--teacher", help="a trained .keras teacher to reuse instead of training --teacher-model")
    models.add_argument("--teacher-model", default="resnet56", help=f"one of: {', '.join(list_models('classifier'))}")
    models.add_argument("--student", default="resnet20", help="the student's model name")

    technique = parser.add_argument_group("distillation and pruning")
    technique.add_argument("--temperature", type=float, default=4.0, help="softening of both networks' logits")
    technique.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label loss")
    technique.add_argument("--sparsity", type=float, default=0.8, help="share of pruned kernel weights")
    technique.add_argument("--prune-epochs", type=int, default=3, help="fine-tuning epochs while pruning")
    technique.add_argument("--prune-lr", type=float, default=0.01, help="peak learning rate of pruning")
    technique.add_argument("--prune-frequency", type=int, default=100, help="steps between mask updates")

    train = parser.add_argument_group("training")
    train.add_argument("--teacher-epochs", type=int, default=15, help="epochs of the teacher on the labels")
    train.add_argument("--student-epochs", type=int, default=15, help="for the student alone and the distilled one")
    train.add_argument("--batch-size", type=int, default=128, help="per replica")
    train.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate, cosine schedule")
    train.add_argument("--weight-decay", type=float, default=1e-4, help="L2 on kernels")
    train.add_argument("--crop-padding", type=int, default=0, help="pad-and-crop augmentation, pixels")
    add_speed_arguments(parser, profile=False)

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and augmentation")
    run.add_argument("--run-dir", help="phase subdirectories and results (default: runs/<dataset>_distill_<student>)")
    run.add_argument("--calibration-size", type=int, default=300, help="training images calibrating int8")
    add_run_arguments(run)
    return parser


def train_phase(run_dir, model_fn, train, validation, args, *, strategy, epochs, **options):
    """The phase's trained network, with the recipe's training flags: loaded if a previous run finished it."""
    options = {"learning_rate": args.lr, **options}
    return fit_or_load(
        model_fn, train, validation, run_dir=run_dir, epochs=epochs, batch_size=args.batch_size,
        weight_decay=args.weight_decay, crop_padding=args.crop_padding, seed=args.seed,
        mixed_precision=args.mixed_precision, xla=args.xla, strategy=strategy, **options,
    ).model


def measure(model, test, representative, out_dir):
    """Test accuracy, sizes and int8 latency of ``model``; its int8 file goes to ``out_dir``."""
    images, labels = test
    content = convert(model, "int8", representative_images=representative)
    if is_chief():
        (out_dir / "model_int8.tflite").write_bytes(content)
    int8 = TFLiteClassifier(content)
    weights, int8_size = model_sizes(model), model_sizes(content)
    return {
        "test_accuracy": accuracy(model, images, labels),
        "int8_test_accuracy": float(np.mean(np.argmax(int8.logits(images), -1) == labels)),
        "parameters": int(model.count_params()),
        "sparsity": sparsity(model),
        "weights_bytes": weights["bytes"],
        "weights_gzip_bytes": weights["gzip_bytes"],
        "int8_tflite_bytes": int8_size["bytes"],
        "int8_tflite_gzip_bytes": int8_size["gzip_bytes"],
        "int8_latency_ms_batch1": median_latency_ms(int8, images[:1].astype(np.float32)),
    }


def print_table(results):
    """The measurements, one model a row."""
    print(f"{'model':<10}{'accuracy':>9}{'int8 acc':>9}{'params':>10}{'sparsity':>9}"
          f"{'weights KB':>11}{'int8 KB':>9}{'int8 gz KB':>11}{'int8 ms':>9}")
    for name, r in results.items():
        print(f"{name:<10}{r['test_accuracy']:>9.4f}{r['int8_test_accuracy']:>9.4f}{r['parameters']:>10,}"
              f"{r['sparsity']:>9.2f}{r['weights_bytes'] / 1024:>11.1f}{r['int8_tflite_bytes'] / 1024:>9.1f}"
              f"{r['int8_tflite_gzip_bytes'] / 1024:>11.1f}{r['int8_latency_ms_batch1']:>9.3f}")


def run(args, *, rules):
    """Train and measure the four models for parsed ``args``; returns the results dict it writes.

    ``rules``: what a re-run may change (``run_recipe``).
    """
    get_builder(args.student, "classifier")  # fail on an unknown name before loading any data
    if args.teacher is None:
        get_builder(args.teacher_model, "classifier")
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    teacher = load_teacher(args.teacher) if args.teacher else None  # a wrong file fails before any work
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    train, validation = train_validation_split(*dataset.train, args.validation_size, seed=args.seed)
    validation = validation if len(validation[0]) else None
    if args.train_size:
        train = labelled_subset(*train, min(1.0, args.train_size / len(train[0])), seed=args.seed)
    mean, std = channel_stats(train[0])
    shape, classes = dataset.image_shape, dataset.num_classes

    def builder(name):
        return lambda: build(name, shape, classes, mean=mean, std=std)

    # Fail on a shape a model cannot take, a teacher of other classes or a bad option, before any output.
    student, teacher_network = builder(args.student)(), teacher or builder(args.teacher_model)()
    Distiller(student, teacher_network, temperature=args.temperature, alpha=args.alpha)
    announce_model(f"teacher {args.teacher or args.teacher_model}", teacher_network)
    announce_model(f"student {args.student}", student)
    pruning = MagnitudePruning(args.sparsity, frequency=args.prune_frequency)
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_distill_{args.student}")
    if teacher is not None and Path(args.teacher).resolve() == run_paths(run_dir / "teacher")["best"].resolve():
        args.teacher = teacher = None  # the run's own trained teacher: the same settings as the run that trained it
    teacher_path = Path(args.teacher) if teacher else run_paths(run_dir / "teacher")["best"]
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    print(f"data: {dataset.name} from {dataset.origin}: {len(train[0])} train, "
          f"{len(validation[0]) if validation else 0} validation, {len(dataset.test[0])} test, {shape}")

    data = dict(train=train, validation=validation, args=args, strategy=strategy)
    if teacher is None:
        train_phase(run_dir / "teacher", builder(args.teacher_model), epochs=args.teacher_epochs, **data)
        teacher = load_teacher(teacher_path)
    networks = {"teacher": teacher}
    networks["student"] = train_phase(run_dir / "student", builder(args.student), epochs=args.student_epochs, **data)
    networks["distilled"] = train_phase(
        run_dir / "distilled", builder(args.student), epochs=args.student_epochs, **data,
        wrap=lambda network: Distiller(network, load_teacher(teacher_path), temperature=args.temperature,
                                       alpha=args.alpha),
    )
    distilled_path = run_paths(run_dir / "distilled")["best"]
    networks["pruned"] = train_phase(
        # The last epoch, not the best: an earlier one may not have reached the target sparsity.
        run_dir / "pruned", lambda: load_model(distilled_path, compile=False), epochs=args.prune_epochs,
        learning_rate=args.prune_lr, restore_best=False, callbacks=[pruning], **data,
    )

    representative = train[0][: args.calibration_size]
    results = {}
    for name, network in networks.items():
        (run_dir / name).mkdir(exist_ok=True)  # a reused --teacher has no phase directory yet
        results[name] = measure(network, dataset.test, representative, run_dir / name)
    summary = {"dataset": dataset.name, "teacher": str(teacher_path), "models": results}
    save_results(run_dir, summary)
    print_table(results)
    print(f"results: {run_dir / 'results.json'}")
    return print_summary(summary, run_dir=run_dir)


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    # int8 calibration measures the trained models again; it changes no training.
    return run_recipe(run, build_parser(), argv, may_change=("calibration_size",))


if __name__ == "__main__":
    main()
