"""Where a dataset's files live: a local folder, or any fsspec URL (s3://bucket/prefix, gs://, ...).

The writer and the manifest only ever ask a `Storage` for these few things, so the guarantees of
docs/DATASETS.md hold on both:

- `writer(name)`: a file that becomes visible whole or not at all. Locally: a hidden temporary
  name, fsync, rename, fsync of the folder. On object storage a PUT (or a completed multipart
  upload) is atomic per object, so the object is written under its final key and the upload is
  aborted when anything fails before the end.
- `folder_writer(name)`: a PNG shard's folder. Locally built under a temporary name and renamed;
  on object storage a prefix has no rename, so the prefix is emptied first and filled object by
  object. Either way only the manifest, written last, vouches for it (its listing's checksum).
- `write_text(name, text)`: the manifest, replaced atomically (rename, or one PUT).
- `locked()`: serialises manifest updates. Locally an flock, so processes sharing a folder merge
  their records; an object store has no lock, so one writer per dataset (one process, or one Ray
  driver, which alone writes the manifest) is the rule there (docs/DATASETS.md).

A storage is rebuilt from `(url, options)` in other processes (Ray workers): `StorageSpec`.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional, Union

TMP_MARK = ".tmp-"
LOCK = ".manifest.lock"
_serial = itertools.count()  # distinct temporary names for threads of one process
_process_lock = threading.Lock()  # flock does not order threads sharing one process's lock file


class StorageError(OSError):
    """The output location cannot be used (no such bucket, no fsspec backend for the URL...)."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderWriter:
    """Receives the files of one folder-shaped shard (a PNG shard), one `put` at a time."""

    def __init__(self, put):
        self.put = put  # (file name, bytes) -> None


class LocalStorage:
    """A folder on this machine (or a shared mount): the original, fsync-and-rename guarantees."""

    is_local = True

    def __init__(self, folder: Union[str, Path]):
        self.folder = Path(folder)
        self.url = str(self.folder)
        self.label = self.folder.name

    def spec(self) -> StorageSpec:
        return StorageSpec(str(self.folder.resolve()))

    def __str__(self) -> str:
        return self.url

    def ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def exists(self, name: str = "") -> bool:
        return (self.folder / name).exists() if name else self.folder.is_dir()

    def is_folder(self, name: str) -> bool:
        return (self.folder / name).is_dir()

    def list_folder(self, name: str) -> list[str]:
        """File names in a folder-shaped shard; OSError when something else is in it."""
        names = []
        for child in (self.folder / name).iterdir():
            if not child.is_file():
                raise OSError(f"{child} is not a file")
            names.append(child.name)
        return sorted(names)

    def size(self, name: str) -> int:
        return (self.folder / name).stat().st_size

    def open_read(self, name: str) -> BinaryIO:
        return open(self.folder / name, "rb")

    def read_text(self, name: str) -> Optional[str]:
        try:
            return (self.folder / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _temp(self, final: Path) -> Path:
        return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{next(_serial)}")

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        final = self.folder / name
        tmp = self._temp(final)
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(self.folder)
        finally:
            tmp.unlink(missing_ok=True)  # only left when something above failed

    @contextmanager
    def folder_writer(self, name: str) -> Iterator[FolderWriter]:
        final = self.folder / name
        tmp = self._temp(final)

        def put(fname: str, data: bytes) -> None:
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        try:
            tmp.mkdir()
            yield FolderWriter(put)
            _fsync_dir(tmp)
            if final.exists():  # a damaged earlier copy: move it aside, then drop it
                old = self._temp(final)
                os.replace(final, old)
                shutil.rmtree(old)
            os.replace(tmp, final)
            _fsync_dir(self.folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def write_text(self, name: str, text: str) -> None:
        final = self.folder / name
        tmp = final.with_name(f".{name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def remove(self, name: str) -> None:
        path = self.folder / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def remove_matching(self, pattern: str) -> int:
        """Delete the entries whose names match a glob pattern (leftovers of killed writers)."""
        removed = 0
        for path in self.folder.glob(pattern):
            self.remove(path.name)
            removed += 1
        return removed

    @contextmanager
    def locked(self) -> Iterator[None]:
        with _process_lock, open(self.folder / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class FsspecStorage:
    """Any other fsspec URL. Objects are written under their final keys (atomic per object);
    there are no temporaries to clean up, and nothing but the manifest makes a shard count."""

    is_local = False

    def __init__(self, url: str, options: Optional[dict] = None):
        import fsspec  # already a dependency (through bentoml); the backend (s3fs...) is an extra

        self.url, self.options = url.rstrip("/"), dict(options or {})
        try:
            self.fs, self.root = fsspec.url_to_fs(self.url, **self.options)
        except (ImportError, ValueError) as e:
            raise StorageError(f"--out: cannot open {url}: {e}") from None
        self.root = self.root.rstrip("/")
        self.label = self.root.rsplit("/", 1)[-1]

    def spec(self) -> StorageSpec:
        return StorageSpec(self.url, self.options)

    def __str__(self) -> str:
        return self.url

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}" if name else self.root

    def _fresh(self, name: str = "") -> None:
        # s3fs caches listings: what another process (or a damaged-object repair) did must be seen.
        self.fs.invalidate_cache(self._path(name))

    def ensure(self) -> None:
        """The bucket (or whatever holds the prefix) must exist; the prefix itself is implicit."""
        parent = self.root.split("/", 1)[0]
        try:
            found = self.fs.exists(parent)
        except Exception as e:  # botocore/aiohttp errors: credentials, endpoint, permissions
            raise StorageError(f"--out: cannot reach {self.url}: {type(e).__name__}: {e}") from None
        if not found:
            raise StorageError(f"--out: {parent} does not exist at {self.url.split('://')[0]}://")
        if hasattr(self.fs, "makedirs") and self.fs.protocol not in ("s3", "s3a", "gs", "gcs", "az", "abfs"):
            self.fs.makedirs(self.root, exist_ok=True)  # real folders (sftp, memory...), not prefixes

    def exists(self, name: str = "") -> bool:
        self._fresh(name)
        return self.fs.exists(self._path(name))

    def is_folder(self, name: str) -> bool:
        self._fresh(name)
        return self.fs.isdir(self._path(name))

    def list_folder(self, name: str) -> list[str]:
        self._fresh(name)
        names = []
        for entry in self.fs.ls(self._path(name), detail=True):
            if entry["type"] != "file":
                raise OSError(f"{entry['name']} is not a file")
            names.append(entry["name"].rsplit("/", 1)[-1])
        return sorted(names)

    def size(self, name: str) -> int:
        self._fresh(name)
        return int(self.fs.info(self._path(name))["size"])

    def open_read(self, name: str) -> BinaryIO:
        return self.fs.open(self._path(name), "rb")

    def read_text(self, name: str) -> Optional[str]:
        try:
            self._fresh(name)
            return self.fs.cat_file(self._path(name)).decode("utf-8")
        except FileNotFoundError:
            return None

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        # autocommit=False: the object appears only at commit(); discard() aborts the upload,
        # so an error half-way never leaves a short object under the final key.
        f = self.fs.open(self._path(name), "wb", autocommit=False)
        try:
            yield f
            f.close()
            f.commit()
        except BaseException:
            f.discard()
            raise

    @contextmanager
    def folder_writer(self, name: str) -> Iterator[FolderWriter]:
        self.remove(name)  # no rename of a prefix: start from an empty one

        def put(fname: str, data: bytes) -> None:
            self.fs.pipe_file(f"{self._path(name)}/{fname}", data)

        yield FolderWriter(put)

    def write_text(self, name: str, text: str) -> None:
        self.fs.pipe_file(self._path(name), text.encode("utf-8"))  # one PUT: old or new, never half

    def remove(self, name: str) -> None:
        path = self._path(name)
        self._fresh(name)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def remove_matching(self, pattern: str) -> int:
        return 0  # nothing is written under a temporary name here

    @contextmanager
    def locked(self) -> Iterator[None]:
        with _process_lock:  # the threads of this process; other writers are the user's to avoid
            yield


Storage = Union[LocalStorage, FsspecStorage]


@dataclass(frozen=True)
class StorageSpec:
    """What rebuilds a storage in another process (a Ray worker): a URL or absolute path, and the
    fsspec options (e.g. endpoint_url) it was opened with."""

    url: str
    options: dict = field(default_factory=dict)

    def open(self) -> Storage:
        return open_storage(self.url, self.options)


def is_url(out: Union[str, Path]) -> bool:
    text = str(out)
    return "://" in text and not text.startswith("file://")


def open_storage(out: Union[str, Path, Storage], options: Optional[dict] = None) -> Storage:
    """A local folder for paths (and file:// URLs), an fsspec storage for any other URL."""
    if isinstance(out, (LocalStorage, FsspecStorage)):
        return out
    if is_url(out):
        return FsspecStorage(str(out), options)
    text = str(out)
    return LocalStorage(Path(text.removeprefix("file://")))
