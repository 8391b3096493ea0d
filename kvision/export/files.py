"""The files of an export before it is published: temporary names that say whose they are, and fsync.

Every temporary file or directory an export makes is named
``<prefix><anything without a dash>-<host>-<pid>``, so the next export can
remove those of exporters on this host that died (``push.clean_stale_staging``)
and leave the others alone. Everything is fsynced before the rename that
publishes it, so a machine crash right after the rename cannot leave a
published name over missing data.
"""

import os
import socket


def owner_tag():
    """``<host>-<pid>``: the end of this process's temporary names."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def left_by_dead_process(path, prefix):
    """Whether ``path``, named ``<prefix><anything>-<host>-<pid>``, belongs to a process of this host that is gone."""
    _, _, owner = path.name[len(prefix):].partition("-")
    host, _, pid = owner.rpartition("-")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def fsync_path(path):
    """fsync one file or directory (a directory's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root):
    """fsync every file and directory under ``root``, each directory after its contents, ``root`` last."""
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            fsync_path(os.path.join(folder, name))
        fsync_path(folder)
