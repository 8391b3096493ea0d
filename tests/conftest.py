"""Test-session set-up shared by every test directory.

The CPU is split into two logical devices before TensorFlow initialises, so
``MirroredStrategy`` tests can run on one machine without GPUs; the collected
tests are ordered for pytest-xdist (see pytest.ini).
"""

import os


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's CPU kernels, as kvision's commands turn them on (kvision.console.use_onednn): the tests, and the
# recipe processes they start, run the kernels users get.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def pytest_collection_modifyitems(config, items):
    """Run the files with slow tests first.

    pytest-xdist (``--dist loadfile --no-loadscope-reorder`` in pytest.ini)
    hands whole files out in this order as workers free up: long files
    started first leave the short ones to fill the end, so both workers
    finish together instead of one waiting for a late end-to-end run.
    """
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)
