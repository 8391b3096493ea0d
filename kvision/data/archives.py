"""Extract dataset archives safely, once, into a cache directory.

Every member is checked before it is written: absolute paths, ``..`` and
links pointing outside the destination are refused, and ``tarfile``'s
``"data"`` filter is applied on top where Python provides it. Extraction goes
into a temporary directory that is renamed into place only when complete, so
a truncated archive never leaves a half-extracted dataset behind; an archive
whose members add up to more than the data-file budget is refused.
"""

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from kvision.data.files import MAX_FILE_BYTES
from kvision.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_STAMP = ".kvision-source"
# Python releases with extraction filters raise this for members the filter refuses.
_FILTER_ERROR = getattr(tarfile, "FilterError", ())


def keras_home():
    """Keras' cache root: ``$KERAS_HOME`` or ``~/.keras``, as Keras resolves it."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def is_archive(path):
    """Whether ``path`` names a tar archive this module can extract."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path):
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_member(member, archive):
    """Raise ``DataError`` if extracting ``member`` could write outside the destination."""
    name = member.name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        reason = "an absolute path"
    elif ".." in parts:
        reason = "a '..' component"
    elif member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        # A symlink resolves relative to its own directory, a hard link to the archive root.
        base = PurePosixPath(name).parent if member.issym() else PurePosixPath()
        depth = 0
        for part in (base / target).parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        if not (target.startswith("/") or depth < 0):
            return
        reason = f"a link to {member.linkname!r} outside the destination"
    elif not (member.isfile() or member.isdir()):
        reason = "a device or fifo entry"
    else:
        return
    raise DataError(
        f"{archive}: refused to extract member {member.name!r}: it has {reason}. "
        f"Expected only files and directories inside the archive. Received: {member.name!r}"
    )


def _checked_members(tar, archive):
    total = 0
    for member in tar:
        _check_member(member, archive)
        total += member.size  # tarfile writes exactly the size a member's header declares
        if total > MAX_FILE_BYTES:
            raise DataError(
                f"{archive}: expected an archive extracting to at most {MAX_FILE_BYTES} bytes. "
                f"Received: more, by member {member.name!r}"
            )
        yield member


def _extract_into(archive, tmp):
    filter_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, members=_checked_members(tar, archive), **filter_kwargs)
    except _FILTER_ERROR as err:
        raise DataError(
            f"{archive}: refused to extract an unsafe member ({err}). "
            f"Expected only files and directories. Received: {err.tarinfo.name!r}"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        size = archive.stat().st_size
        raise DataError(
            f"{archive}: expected a complete tar archive. "
            f"Received: a truncated or corrupt file of {size} bytes ({type(err).__name__}: {err})"
        ) from None


def _stamp_of(archive):
    stat = archive.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}\n"


def _cache_parents(archive):
    """Where the extracted copy may live: next to the archive, else in Keras' cache."""
    yield archive.parent
    yield keras_home() / "datasets" / "kvision-extract"


def _is_complete(dest, stamp):
    return (dest / _STAMP).is_file() and (dest / _STAMP).read_text() == stamp


def _move_into_place(tmp, dest, stamp):
    """Rename the finished extraction to ``dest``; another process may have won the race."""
    if dest.exists() and not _is_complete(dest, stamp):
        shutil.rmtree(dest)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not _is_complete(dest, stamp):
            raise


def extract_archive(archive):
    """Extract ``archive`` once and return the directory holding its contents.

    The contents land in ``<archive name without suffix>.extracted`` next to
    the archive, or under ``~/.keras/datasets/kvision-extract`` when that
    directory is not writable. A later call reuses the extraction unless the
    archive's size or modification time changed.

    Raises:
        DataError: for unsafe members or a truncated/corrupt archive.
    """
    archive = Path(archive)
    stamp = _stamp_of(archive)
    last_error = None
    for parent in _cache_parents(archive):
        dest = parent / f"{_archive_stem(archive)}.extracted"
        if _is_complete(dest, stamp):
            return dest
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=parent))
        except OSError as err:
            last_error = err
            continue
        try:
            _extract_into(archive, tmp)
            (tmp / _STAMP).write_text(stamp)
            _move_into_place(tmp, dest, stamp)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return dest
    raise DataError(f"{archive}: expected a writable directory to extract into. Received: {last_error}")
