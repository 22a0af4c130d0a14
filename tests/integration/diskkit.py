"""Real small disks for the disk-fault tests: a tmpfs that fills up, an ext4 image that the
kernel turns read-only, a ballast file, and what must hold of a node's data afterwards.

The disks are real mounts (the tests run as root, here and in CI): a full disk is a tmpfs of a
few MiB whose last byte a ballast file took, so SQLite and the blob store meet ENOSPC exactly
as on a box. A disk going read-only under a running server is what the kernel does to an ext4
file system after an error (``errors=remount-ro``), triggered through ext4's own
``trigger_fs_error`` knob; a plain ``mount -o remount,ro`` cannot do it, since Linux refuses it
(EBUSY) while the server holds its database open for writing. Where mounting is not allowed
the tests skip and say why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from edgekit import HOUSEHOLD_BUSINESS, UNIT
from servers import assert_dense, held, opened_node

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=check)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root (the CI runs these tests as root)")


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB at ``mountpoint``, unmounted at the end."""
    _need_root()
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = _run(
        "mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mountpoint), check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        _unmount(mountpoint)


def remount(mountpoint: Path, mode: str) -> None:
    """``mount -o remount,ro`` or ``remount,rw`` (only while no process holds a file open for writing)."""
    _run("mount", "-o", f"remount,{mode}", str(mountpoint))


def _unmount(mountpoint: Path) -> None:
    if _run("umount", str(mountpoint), check=False).returncode != 0:
        # Something still holds a file there (a failed test's server): detach it anyway so the
        # next test and the temporary directory's cleanup are not blocked.
        _run("umount", "-l", str(mountpoint), check=False)


class Ext4Disk:
    """An ext4 file system in an image file on a loop device, mounted with the kernel's
    ``errors=remount-ro``: :meth:`fail` makes it read-only under whoever uses it, as a failing
    disk does; :meth:`repair` is the technician's way back (unmount, ``e2fsck -fy``, mount)."""

    def __init__(self, image: Path, mountpoint: Path, size_mb: int) -> None:
        self.image = image
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.device: str | None = None

    def __enter__(self) -> Ext4Disk:
        _need_root()
        for tool in ("mkfs.ext4", "e2fsck", "losetup"):
            if _run("sh", "-c", f"command -v {tool}", check=False).returncode != 0:
                pytest.skip(f"{tool} is not installed (apt-get install e2fsprogs mount)")
        with self.image.open("wb") as out:
            out.truncate(self.size_mb * 1024 * 1024)
        _run("mkfs.ext4", "-q", "-F", str(self.image))
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.mount()
        knob = self._knob()
        if not knob.exists():
            self.__exit__()
            pytest.skip(f"this kernel has no {knob}: a disk cannot be made to fail on demand")
        return self

    def mount(self) -> None:
        done = _run(
            "mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mountpoint), check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a loop device here: {done.stderr.strip()}")
        self.device = _run("findmnt", "-no", "SOURCE", str(self.mountpoint)).stdout.strip()

    def _knob(self) -> Path:
        assert self.device is not None
        return Path("/sys/fs/ext4") / Path(self.device).name / "trigger_fs_error"

    def fail(self) -> None:
        """An ext4 error: the kernel aborts the journal and remounts the file system read-only."""
        self._knob().write_text("motcua disk-fault test\n")
        with pytest.raises(OSError, match="Read-only file system"):
            (self.mountpoint / "probe").touch()

    def repair(self) -> int:
        """Unmount, check and repair, mount again; returns e2fsck's exit code (0: nothing to do,
        1: errors corrected; 4 and above: left uncorrected)."""
        _run("umount", str(self.mountpoint))
        checked = _run("e2fsck", "-fy", str(self.image), check=False)
        self.mount()
        return checked.returncode

    def __exit__(self, *exc: object) -> None:
        if self.device is not None:
            _unmount(self.mountpoint)
            self.device = None


def fill(ballast: Path, leave_bytes: int = 0) -> int:
    """Write ``ballast`` until the disk is full (ENOSPC), then give back ``leave_bytes`` (rounded
    by the file system to its blocks); returns the bytes it holds."""
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    chunk, written = 1 << 20, 0
    zeros = bytes(chunk)
    try:
        while chunk:
            try:
                n = os.write(fd, zeros[:chunk])
                written += n
                if n < chunk:
                    chunk //= 2
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
        if leave_bytes:
            written = max(0, written - leave_bytes)
            os.ftruncate(fd, written)
    finally:
        os.close(fd)
    return written


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# --- a clerk at the web form -------------------------------------------------------------------


def form_fields(csrf: str, applicant: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "procedure": HOUSEHOLD_BUSINESS,
        "applicant_type": "citizen",
        "applicant_name": applicant,
        "citizen_id": "092085001234",
        "dob": "14/03/1985",
        "phone": "0912 345 678",
        "address": "12 Mậu Thân",
        "address_unit": UNIT,
        "handling_unit": UNIT,
        "doc_0_form": "original",
        "doc_0_count": "1",
        "fee": "100.000",
        "channel": "direct",
    }


def scan(n: int) -> bytes:
    """A distinct small PDF (distinct bytes: each scan is a new blob to store)."""
    return PDF + f"% scan {n} {os.urandom(8).hex()}\n".encode() + os.urandom(2048)


def post_form(client: httpx.Client, csrf: str, applicant: str, pdf: bytes) -> httpx.Response:
    files = [("scans", ("giấy đề nghị.pdf", pdf, "application/pdf"))]
    return client.post("/dossiers", data=form_fields(csrf, applicant), files=files)


# --- what must hold of a node's data after a disk fault ------------------------------------------


def assert_sound(
    data_dir: Path,
    acknowledged: Iterable[str] = (),
    scans: Iterable[tuple[str, str]] = (),
    *,
    exact: bool = False,
) -> int:
    """The node at ``data_dir`` (no server running) is intact: ``PRAGMA integrity_check`` and
    the foreign keys are clean; its own ops are 1..n with nothing missing; every dossier in the
    query tables is a folded entity with its create op and the other way round; every scan
    counted as attached is in the blob store with the right hash, no half-written blob is
    left; every ``acknowledged`` dossier is there (``exact``: and no other), every acknowledged
    scan (dossier id, sha256) is attached. Returns the number of dossiers."""
    conn = sqlite3.connect(f"file:{data_dir / 'motcua.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        projected = {row[0] for row in conn.execute("SELECT id FROM dossiers")}
        attached = conn.execute("SELECT dossier_id, sha256 FROM attachments").fetchall()
    finally:
        conn.close()
    with opened_node(data_dir) as node:
        me = node.identity.node
        assert_dense(str(data_dir), held(node), [me])
        folded = {entity for (kind, entity) in node.replica.states("dossier") if kind == "dossier"}
        assert projected == folded, "the dossier table and the change log disagree"
        for dossier in folded:
            assert (node.replica.state("dossier", dossier) or {}).get("_created"), (
                f"{dossier} has no create op"
            )
        for dossier, digest in attached:
            assert node.blobs.has(digest), f"scan {digest} of {dossier} is counted as attached but missing"
            node.blobs.get(digest)  # raises CorruptBlob when the bytes do not hash to the name
        leftovers = [p.name for p in (data_dir / "blobs").rglob(".incoming-*")]
        assert leftovers == [], f"half-written scans left behind: {leftovers}"
    lost_scans = set(scans) - {(str(d), str(h)) for d, h in attached}
    assert not lost_scans, f"acknowledged scans lost: {sorted(lost_scans)}"
    missing = set(acknowledged) - folded
    assert not missing, f"acknowledged dossiers lost: {sorted(missing)}"
    if exact:
        assert folded == set(acknowledged), (
            f"dossiers nobody was told about: {sorted(folded - set(acknowledged))}"
        )
    return len(folded)
