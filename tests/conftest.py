"""Test-session set-up shared by every test directory.

The CPU is split into two logical devices before TensorFlow initialises, so
``MirroredStrategy`` tests can run on one machine without GPUs; the collected
tests are ordered and grouped for pytest-xdist (see pytest.ini).
"""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def _module_fixtures(item):
    """Names of the module-scoped fixtures ``item`` uses."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope == "module"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads xdist_group markers into the node ids
def pytest_collection_modifyitems(config, items):
    """Run the slow modules first and keep the users of a module-scoped fixture on one xdist worker.

    pytest-xdist (``--dist loadgroup --no-loadscope-reorder`` in pytest.ini)
    hands work out in this order as workers free up: long tests started first
    leave the short ones to fill the end, so both workers finish together
    instead of one waiting for a late end-to-end run. A module-scoped fixture
    (a recipe run, a trained model, an export) whose users landed on two
    workers would be built twice. Modules stay contiguous, so a module's
    fixtures are also built once without xdist.
    """
    for item in items:
        if _module_fixtures(item) and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)
