"""``kvision data convert`` (``python -m kvision.data.convert``): write any dataset kvision reads as TFRecord shards.

    kvision data convert --dataset fashion_mnist --output ~/data/fashion_mnist_tfrecord
    kvision data convert --dataset folder --data-dir ~/flowers --output ~/data/flowers \\
        --image-size 224 --format jpeg --validation-size 0.05 --shards 16

Then train from them with ``--dataset tfrecord --data-dir OUTPUT``. The
output appears only when complete; a rerun with the same dataset and options
does nothing, one into a directory holding anything else is refused.
"""

import argparse
import shlex
import sys

from kvision.console import HelpFormatter, prog_name
from kvision.data.sources import SOURCE_NAMES, open_dataset
from kvision.data.tfrecord import IMAGE_FORMATS, SHARD_BYTES, write_tfrecords
from kvision.errors import exit_on_error


def open_source(name, data_dir, image_size, download):
    """The dataset to convert, in memory or streamed; no validation is carved here (--validation-size does it)."""
    return open_dataset(name, data_dir, download=download, image_size=image_size, validation=0)


def build_parser():
    parser = argparse.ArgumentParser(prog=prog_name("python -m kvision.data.convert"), description=__doc__,
                                     formatter_class=HelpFormatter)
    source = parser.add_argument_group("source")
    source.add_argument("--dataset", required=True, help=f"the dataset to read: {', '.join(SOURCE_NAMES)}")
    source.add_argument("--data-dir", help="where it is (a folder, archive or file); default: the usual places")
    source.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    output = parser.add_argument_group("output")
    output.add_argument("--output", required=True, help="the directory to create (must not hold another dataset)")
    output.add_argument("--shards", type=int, metavar="N",
                        help=f"shards per split (fewer for a split with fewer examples); "
                             f"default: a new shard every {SHARD_BYTES // 2**20} MiB")
    output.add_argument("--image-size", type=int, metavar="N", help="resize every image to N×N; default: keep sizes")
    output.add_argument("--format", choices=IMAGE_FORMATS,
                        help="encode images as PNG (lossless) or JPEG (quality 95); default: keep JPEG/PNG "
                             "files as they are, PNG for the rest")
    output.add_argument("--validation-size", type=float, default=0.0, metavar="F",
                        help="fraction of train written as a validation split, chosen by a hash of each "
                             "example's id (default: 0.0, none)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the full traceback of an error, not only its line")
    return parser


def convert(dataset, output, *, data_dir=None, download=True, shards=None, image_size=None, image_format=None,
            validation=0.0, command=None):
    """Write the dataset named ``dataset`` as TFRecord shards in ``output``; returns the manifest and prints the counts.

    Keywords as ``write_tfrecords``'s; ``data_dir`` and ``download`` say where the source is found.
    """
    source = open_source(dataset, data_dir, image_size, download)
    manifest = write_tfrecords(source, output, shards=shards, image_size=image_size, image_format=image_format,
                               validation=validation, command=command)
    counts = ", ".join(f"{split} {sum(s['count'] for s in written)} examples in {len(written)} shards"
                       for split, written in manifest["splits"].items())
    print(f"{output}: {counts}. Read it with --dataset tfrecord --data-dir {output}")
    return manifest


def main(argv=None):
    """Parse ``argv`` and convert; an error (a bad flag, path or file) exits with one ``error:`` line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    command = shlex.join([*prog_name("python -m kvision.data.convert").split(), *argv])
    return exit_on_error(
        lambda: convert(args.dataset, args.output, data_dir=args.data_dir, download=not args.no_download,
                        shards=args.shards, image_size=args.image_size, image_format=args.format,
                        validation=args.validation_size, command=command),
        verbose=args.verbose,
    )


if __name__ == "__main__":
    main()
