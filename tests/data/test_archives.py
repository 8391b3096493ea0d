"""Archives are extracted safely: nothing outside the destination, nothing half-done."""

import tarfile

import pytest

from kvision.data import load_dataset
from kvision.data.archives import extract_archive
from kvision.errors import DataError
from tests.data import writers


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("depth", [1, 3])
def test_dot_dot_member_is_refused(tmp_path, depth):
    downloads = tmp_path / "a" / "b" / "downloads"
    downloads.mkdir(parents=True)
    archive = writers.tar_with_member(downloads / "cifar-10-binary.tar.gz", "../" * depth + "evil")
    with pytest.raises(
        DataError, match=r"refused to extract member '(\.\./)+evil': it has a '\.\.' component"
    ):
        load_dataset("cifar10", archive)
    assert not list(tmp_path.rglob("evil"))
    assert entries(downloads) == ["cifar-10-binary.tar.gz"]


def test_absolute_member_is_refused(tmp_path):
    target = tmp_path / "outside" / "evil"
    archive = writers.tar_with_member(tmp_path / "cifar-10-binary.tar.gz", str(target))
    with pytest.raises(DataError, match="it has an absolute path"):
        extract_archive(archive)
    assert not target.exists() and not target.parent.exists()
    assert entries(tmp_path) == ["cifar-10-binary.tar.gz"]


@pytest.mark.parametrize("link_target", ["../../outside", "/etc"])
def test_link_escaping_destination_is_refused(tmp_path, link_target):
    archive = writers.tar_with_member(tmp_path / "x.tar.gz", "release/link", link_target=link_target)
    with pytest.raises(DataError, match="outside the destination"):
        extract_archive(archive)
    assert entries(tmp_path) == ["x.tar.gz"]


def test_link_inside_destination_is_kept(tmp_path):
    with tarfile.open(tmp_path / "x.tar.gz", "w:gz") as tar:
        tar.add(
            writers.write_cifar10_binary(tmp_path / "src").path / "batches.meta.txt", arcname="rel/names.txt"
        )
        link = tarfile.TarInfo("rel/sub/alias.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "../names.txt"
        tar.addfile(link)
    extracted = extract_archive(tmp_path / "x.tar.gz")
    assert (extracted / "rel" / "sub" / "alias.txt").read_text().startswith("airplane\nautomobile")


def test_truncated_archive_leaves_nothing_behind(tmp_path):
    written = writers.write_cifar10_binary(tmp_path / "src")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = writers.make_tar_gz(written.path, downloads / "cifar-10-binary.tar.gz")
    full = archive.read_bytes()
    archive.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", downloads)
    message = str(info.value)
    assert str(archive) in message and "expected a complete tar archive" in message
    assert f"Received: a truncated or corrupt file of {len(full) // 2} bytes" in message
    assert entries(downloads) == ["cifar-10-binary.tar.gz"]

    archive.write_bytes(full)  # the repaired archive is then extracted normally
    assert len(load_dataset("cifar10", downloads).train[0]) == 15
