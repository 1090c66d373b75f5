"""Content-addressed step artifacts, on a local folder or any fsspec URL.

An artifact is stored once at `<root>/<id[:2]>/<id>`, where `id` is the first 32 hex chars of
the sha256 of its serialized bytes (a folder: of its sorted relative paths and file hashes), so
the same value stored twice is kept once. Writes go to a temporary name and are renamed into
place: a reader never sees a half-written artifact, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from featureline.errors import (
    ConfigError,
    FeaturelineError,
    MissingExtraError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from featureline.pipelines._materializers import (
    DEFAULT_MATERIALIZERS,
    ID_CHARS,
    METRICS_OUTPUT,
    ArrowMaterializer,
    DirMaterializer,
    FileMaterializer,
    JsonMaterializer,
    Materializer,
    Metrics,
    MetricsMaterializer,
    ModelMaterializer,
    NumpyMaterializer,
    PandasMaterializer,
    PickleMaterializer,
    PolarsMaterializer,
    _candidates,
    _Fallback,
    _tree,
    _type_name,
    canonical_json,
    coerce,
    hash_path,
    materializer_for,
    materializer_name,
    tracked_metrics,
)

_ID_RE = re.compile(rf"[0-9a-f]{{{ID_CHARS}}}")


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: content hash `id`, short type name `kind`, where and how it is kept."""

    id: str
    kind: str
    uri: str
    size: int
    materializer: str


def _local_size(path: Path) -> int | None:
    """Bytes stored at `path` (a file, or the files of a folder); None when nothing is there."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for _, p in _tree(path))
    return None


def _move_into_place(data: Path, final: Path, size: int) -> None:
    """Rename a fully written file/folder to its content address; keep an intact existing copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if _local_size(final) == size:
        return
    if data.is_file():
        os.chmod(data, 0o444)  # a stored artifact is immutable: readers get paths into the store
        os.replace(data, final)
        return
    for _, path in _tree(data):
        os.chmod(path, 0o444)
    if final.exists():  # a damaged copy (e.g. files deleted by hand): replace it
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(data, final)
    except OSError:
        if _local_size(final) != size:  # not a concurrent writer of the same content
            raise


class _LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"Cannot create the artifact folder `{root}`: {e}. "
                "Fix: point the artifact root to a writable folder."
            ) from e

    def location(self, id_: str) -> str:
        return str(self.root / id_[:2] / id_)

    def uri(self, loc: str) -> str:
        return loc

    def tmp_dir(self) -> Path:
        tmp = self.root / ".tmp"  # same filesystem as the final location: rename is atomic
        tmp.mkdir(exist_ok=True)
        return tmp

    def size(self, loc: str) -> int | None:
        return _local_size(Path(loc))

    def commit(self, data: Path, loc: str, size: int) -> None:
        _move_into_place(data, Path(loc), size)

    def local_path(self, loc: str, id_: str, size: int) -> Path:
        return Path(loc)


class _FsspecBackend:
    def __init__(self, url: str, cache_dir: Path | None) -> None:
        try:
            import fsspec
        except ImportError as e:
            raise MissingExtraError.for_extra("fsspec", "fsspec") from e
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as e:
            raise ConfigError(
                f"Cannot open the artifact root `{url}`: {e}. Fix: install the fsspec "
                "implementation for this scheme (e.g. `s3fs` for s3://) or use a local folder."
            ) from e
        self.root = str(root).rstrip("/")
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.cache = cache_dir or Path(tempfile.gettempdir()) / "featureline-artifacts" / key

    def location(self, id_: str) -> str:
        return f"{self.root}/{id_[:2]}/{id_}"

    def uri(self, loc: str) -> str:
        return str(self.fs.unstrip_protocol(loc))

    def tmp_dir(self) -> Path:
        tmp = self.cache / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def size(self, loc: str) -> int | None:
        if not self.fs.exists(loc):
            return None
        if self.fs.isdir(loc):
            return sum(int(info["size"]) for info in self.fs.find(loc, detail=True).values())
        return int(self.fs.size(loc))

    def commit(self, data: Path, loc: str, size: int) -> None:
        if self.size(loc) == size:
            return
        tmp = f"{loc.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}"
        try:
            files = [("", data)] if data.is_file() else [("/" + r, p) for r, p in _tree(data)]
            for rel, path in files:
                self.fs.makedirs(f"{tmp}{rel}".rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), f"{tmp}{rel}")
            if self.fs.exists(loc):  # a damaged copy: replace it
                self.fs.rm(loc, recursive=True)
            self.fs.mv(tmp, loc, recursive=True)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)

    def local_path(self, loc: str, id_: str, size: int) -> Path:
        """A local copy (cached by content id) for materializers, which read local paths."""
        final = self.cache / id_[:2] / id_
        if _local_size(final) == size:
            return final
        work = Path(tempfile.mkdtemp(prefix="get-", dir=self.tmp_dir()))
        try:
            data = work / "data"
            if self.fs.isdir(loc):
                for name in sorted(self.fs.find(loc)):
                    target = data / name[len(loc) + 1 :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(name, str(target))
            else:
                self.fs.get_file(loc, str(data))
            _move_into_place(data, final, size)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final


class ArtifactStore:
    """Content-addressed artifacts under `root`: a local folder (default) or an fsspec URL.

    `file:///abs/path` is a local folder; other URLs ("memory://x", "s3://bucket/prefix") need
    fsspec (`pip install 'featureline[fsspec]'`) and are read through a local cache folder.
    `materializers` are tried before the built-in ones, so they can take over any type.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        materializers: tuple[Materializer, ...] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        text = os.fspath(root) if isinstance(root, os.PathLike) else root
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"Artifact root `{root!r}` is empty. Fix: pass a folder path such as "
                "`.featureline/artifacts`, or an fsspec URL such as `s3://bucket/artifacts`."
            )
        self.root = text
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        for m in materializers:
            if not isinstance(m, Materializer):
                raise ValidationError(
                    f"`{m!r}` is not a materializer. Fix: give it `kind`, `can_handle(obj)`, "
                    "`write(obj, path)` and `read(path)`."
                )
        self._custom = tuple(materializers)
        self.materializers = self._custom + DEFAULT_MATERIALIZERS
        self._backend: _LocalBackend | _FsspecBackend
        if text.lower().startswith("file://"):
            self._backend = _LocalBackend(Path(unquote(urlsplit(text).path)))
        elif "://" in text:
            self._backend = _FsspecBackend(text, self.cache_dir)
        else:
            self._backend = _LocalBackend(Path(text).expanduser())

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.root, self._custom, self.cache_dir))

    def materializer_for(self, obj: object, hint: Any = None) -> Materializer:
        """The materializer `put(obj, hint)` would try first."""
        return materializer_for(coerce(obj, hint), self.materializers)

    def put(self, obj: object, hint: Any = None) -> ArtifactRef:
        """Store `obj` (its declared type `hint` may coerce it) and return its reference.

        Unpicklable values raise ValidationError naming their type; the caller adds the step.
        """
        obj = coerce(obj, hint)
        candidates = _candidates(obj, self.materializers)
        work = Path(tempfile.mkdtemp(prefix="put-", dir=self._backend.tmp_dir()))
        try:
            data = work / "data"
            used = self._write(obj, data, candidates)
            id_, size = hash_path(data)
            loc = self._backend.location(id_)
            self._backend.commit(data, loc, size)
        except OSError as e:
            raise StorageError(
                f"Could not store an object of type `{_type_name(obj)}` in `{self.root}`: {e}. "
                "Fix: check that the artifact root is writable and has free space."
            ) from e
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ArtifactRef(id_, used.kind, self._backend.uri(loc), size, materializer_name(used))

    def _write(self, obj: object, data: Path, candidates: list[Materializer]) -> Materializer:
        for m in candidates:
            try:
                m.write(obj, data)
                return m
            except _Fallback:
                if data.is_dir():
                    shutil.rmtree(data)
                data.unlink(missing_ok=True)
            except (FeaturelineError, OSError):
                raise
            except Exception as e:
                raise ValidationError(
                    f"Cannot store an object of type `{_type_name(obj)}` as `{m.kind}`: "
                    f"{type(e).__name__}: {e}. Fix: return a value of a supported type, or "
                    "register a materializer for it with `ArtifactStore(materializers=...)`."
                ) from e
        raise ValidationError(
            f"No materializer can store an object of type `{_type_name(obj)}`. Fix: return a "
            "supported type or pass a materializer for it to `ArtifactStore(materializers=...)`."
        )

    def _location(self, ref: ArtifactRef) -> str:
        if not isinstance(ref, ArtifactRef) or not _ID_RE.fullmatch(str(ref.id)):
            raise ValidationError(
                f"`{ref!r}` is not a valid artifact reference. Fix: pass the `ArtifactRef` "
                "returned by `ArtifactStore.put`."
            )
        return self._backend.location(ref.id)

    def exists(self, ref: ArtifactRef) -> bool:
        """True when all of the artifact's bytes are in the store (checked by size)."""
        return self._backend.size(self._location(ref)) == ref.size

    def path(self, ref: ArtifactRef) -> str:
        """Where the artifact is stored: a local path, or a URL for fsspec roots."""
        return self._backend.uri(self._location(ref))

    def get(self, ref: ArtifactRef) -> object:
        """The stored value. Files and folders come back as paths into the store: read-only."""
        loc = self._location(ref)
        if self._backend.size(loc) != ref.size:
            raise NotFoundError(
                f"Artifact `{ref.id}` ({ref.kind}) is missing or incomplete in `{self.root}`. "
                "Fix: re-run the step that produced it without the cache."
            )
        return self._materializer(ref.materializer).read(
            self._backend.local_path(loc, ref.id, ref.size)
        )

    def _materializer(self, name: str) -> Materializer:
        for m in self.materializers:
            if materializer_name(m) == name:
                return m
        module, _, qualname = str(name).partition(":")
        try:
            found: Any = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            instance = found()
        except Exception as e:
            raise ValidationError(
                f"Unknown materializer `{name}`: {e}. Fix: pass it to "
                "`ArtifactStore(materializers=...)` or install the package that defines it."
            ) from e
        if not isinstance(instance, Materializer):
            raise ValidationError(
                f"`{name}` is not a materializer (no kind/can_handle/write/read)."
            )
        return instance


def _reopen(
    root: str, materializers: tuple[Materializer, ...], cache_dir: Path | None
) -> ArtifactStore:
    return ArtifactStore(root, materializers=materializers, cache_dir=cache_dir)


__all__ = [
    "DEFAULT_MATERIALIZERS",
    "METRICS_OUTPUT",
    "ArrowMaterializer",
    "ArtifactRef",
    "ArtifactStore",
    "DirMaterializer",
    "FileMaterializer",
    "JsonMaterializer",
    "Materializer",
    "Metrics",
    "MetricsMaterializer",
    "ModelMaterializer",
    "NumpyMaterializer",
    "PandasMaterializer",
    "PickleMaterializer",
    "PolarsMaterializer",
    "canonical_json",
    "hash_path",
    "materializer_for",
    "tracked_metrics",
]
