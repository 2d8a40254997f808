"""Locks per signature, so that concurrent runs compute a signature once: Prefect's file-system lock manager
made safe for processes that share a disk (`{root}/.dbnd/locks`), and the same on S3, GCS and Azure roots with
conditional writes. Prefect's transactions take a lock with neither an expiry nor a bounded wait, so these add
both: a live holder renews its lock, a crashed one's lock expires after `run.lock_expiry` seconds, and a waiter
gives up after `run.lock_wait` seconds.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.locking.filesystem import FileSystemLockManager

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext


_locks_by_folder: dict[tuple[str, float, float], "SignatureLocks"] = {}
# object stores whose fsspec file system makes an object only if none exists (`pipe_file(mode="create")`)
LOCKING_STORES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://")


def signature_locks(run: "RunContext") -> "SignatureLocks | None":
    """The lock manager of `run`'s data root (one per folder and process), or None: serialize off, or a root
    on a store without conditional writes (anything but local disk, S3, GCS and Azure)."""
    settings = run.settings
    if not settings.serialize:
        return None
    root = run.data_root
    remote = "://" in root and not root.startswith(("file://", "local://"))
    if remote and not root.startswith(LOCKING_STORES):
        return None
    folder = f"{root.rstrip('/')}/.dbnd/locks" if remote else \
        os.path.abspath(os.path.join(root.split("://", 1)[-1], ".dbnd", "locks"))
    key = (folder, float(settings.lock_expiry), float(settings.lock_wait))
    if key not in _locks_by_folder:
        _locks_by_folder[key] = (ObjectStoreLocks(folder, settings.lock_expiry, settings.lock_wait) if remote else
                                 SignatureLocks(Path(folder), settings.lock_expiry, settings.lock_wait))
    return _locks_by_folder[key]


class LockWaitTimeout(RuntimeError):
    """A run waited `run.lock_wait` seconds for another computing the same signature."""


class SignatureLocks(FileSystemLockManager):
    """Prefect's file lock manager with what its transactions do not give it, for processes that share a disk.

    - a lock file appears whole (written aside, then hard-linked into place: linking fails if one exists), so
      a reader never sees a half-written lock;
    - the lock expires `expiry` seconds after its last renewal; a live holder renews it every `expiry / 3`
      seconds, so only a crashed holder's lock expires. An expired lock is removed under a takeover guard,
      then made anew like a free one (one waiter wins);
    - a waiter gives up after `wait` seconds with LockWaitTimeout (the transaction ignores a False).

    The file operations are the five methods `_load`, `_age`, `_create`, `_replace`, `_remove`;
    `ObjectStoreLocks` does them with conditional writes on an object store.
    """

    def __init__(self, directory: Path, expiry: float = 30.0, wait: float = 3600.0) -> None:
        super().__init__(directory)
        self.expiry, self.wait = float(expiry), float(wait)
        self._init_renewals()

    def _init_renewals(self) -> None:
        self._folder, self._folder_made = str(self.lock_files_directory), False
        self._held: dict[str, str] = {}  # key -> holder, for the locks this process holds and renews
        self._renewer: threading.Thread | None = None  # one thread renews them all, while any is held
        self._guard = threading.Lock()
        self._renewal = threading.Lock()  # a renewal's write and a release's hand-back never interleave

    def __deepcopy__(self, memo: dict[int, Any]) -> "SignatureLocks":
        return self  # one manager per folder and process: its renewals are shared state

    def __getstate__(self) -> dict[str, Any]:  # a task runner in other processes (Dask, Ray) pickles the task
        return {"directory": str(self.lock_files_directory), "expiry": self.expiry, "wait": self.wait}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["directory"]), state["expiry"], state["wait"])  # type: ignore[misc]

    def _lock_path_for_key(self, key: str) -> Any:
        return os.path.join(self._folder, key.replace("/", "_").replace("\\", "_") + ".lock")

    def _ensure_lock_files_directory_exists(self) -> None:
        if not self._folder_made:
            super()._ensure_lock_files_directory_exists()
            self._folder_made = True

    # ----- the file operations --------------------------------------------------------------------------

    def _load(self, path: Any) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _age(self, path: Any) -> float | None:
        try:
            return time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return None

    def _create(self, path: Any, data: bytes) -> bool:
        """Make `path` with `data`, whole, unless it exists (then False)."""
        aside = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.tmp")
        with open(aside, "wb") as f:
            f.write(data)
        try:
            os.link(aside, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(aside)

    def _replace(self, path: Any, data: bytes) -> None:
        aside = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.tmp")
        with open(aside, "wb") as f:
            f.write(data)
        os.replace(aside, path)

    def _remove(self, path: Any) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    # ----- the lock ---------------------------------------------------------------------------------------

    def _read(self, path: Any) -> dict[str, Any] | None:
        data = self._load(path)
        if data is None:
            return None
        try:
            info = json.loads(data)
            float(info["expires"])
            return info
        except (ValueError, KeyError, TypeError):  # not ours or damaged: counts as held until it is `expiry` old
            age = self._age(path)
            return None if age is None else {"holder": "?", "expires": time.time() - age + self.expiry}

    def _content(self, holder: str) -> bytes:
        return json.dumps({"holder": holder, "expires": time.time() + self.expiry, "pid": os.getpid()}).encode()

    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                     hold_timeout: float | None = None) -> bool:
        self._ensure_lock_files_directory_exists()
        path = self._lock_path_for_key(key)
        wait = self.wait if acquire_timeout is None else acquire_timeout
        deadline = time.monotonic() + wait
        while True:
            info = self._read(path)
            if info is None:
                if self._create(path, self._content(holder)):
                    self._start_renewing(key, holder)
                    return True
                continue
            if info.get("holder") == holder and info["expires"] > time.time():
                return True
            if info["expires"] <= time.time():
                self._take_over(path)
                time.sleep(0.01)  # a waiter that lost the takeover lets the winner make its lock
                continue
            if time.monotonic() >= deadline:
                raise LockWaitTimeout(f"waited {wait:g} s for another run computing the same signature (lock "
                                      f"{path}, held by {info.get('holder')}); raise run.lock_wait or remove the "
                                      "lock file if no run holds it")
            time.sleep(0.1)

    async def aacquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                            hold_timeout: float | None = None) -> bool:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.acquire_lock, key, holder, acquire_timeout, hold_timeout)

    def _take_over(self, path: Any) -> None:
        """Remove an expired lock, under a takeover guard (made only if it does not exist), so that a waiter
        that saw the old lock never removes the fresh one another waiter has made since. A guard left by a
        process that crashed in these few lines is removed once it is older than the expiry (at least 10 s)."""
        guard = f"{str(path)[:-len('.lock')]}.takeover"
        if not self._create(guard, b""):
            age = self._age(guard)
            if age is not None and age > max(10.0, self.expiry):
                self._remove(guard)
            return
        try:
            info = self._read(path)
            if info is not None and info["expires"] <= time.time():
                self._remove(path)
        finally:
            self._remove(guard)

    def _start_renewing(self, key: str, holder: str) -> None:
        with self._guard:
            self._held[key] = holder
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="dbnd-lock-renewer", daemon=True)
                self._renewer.start()

    def _renew(self) -> None:
        """Every `expiry / 3` seconds, renew each lock this process holds; end when it holds none."""
        while True:
            time.sleep(self.expiry / 3)
            with self._guard:
                held = dict(self._held)
                if not held:
                    self._renewer = None
                    return
            for key, holder in held.items():
                path = self._lock_path_for_key(key)
                try:
                    info = self._read(path)
                    if info is not None and info.get("holder") == holder:
                        with self._renewal:
                            if self._held.get(key) == holder:  # not released meanwhile
                                self._replace(path, self._content(holder))
                        continue
                except Exception:  # noqa: BLE001 - a store that stops answering: the lock expires, as a crash's would
                    pass
                with self._guard:  # lost (expired and taken over) or unreachable: no longer ours
                    if self._held.get(key) == holder:
                        del self._held[key]

    def stop_renewing(self, key: str) -> None:
        """Stop renewing the lock on `key` (it then expires, as a crashed holder's does)."""
        with self._guard:
            self._held.pop(key, None)

    def release_lock(self, key: str, holder: str) -> None:
        with self._renewal:
            self.stop_renewing(key)
        path = self._lock_path_for_key(key)
        info = self._read(path)
        if info is not None and info.get("holder") == holder:
            self._remove(path)

    def is_locked(self, key: str, use_cache: bool = False) -> bool:
        info = self._read(self._lock_path_for_key(key))
        return info is not None and info["expires"] > time.time()

    def is_lock_holder(self, key: str, holder: str) -> bool:
        if self._held.get(key) == holder:  # made by this process and renewed since (a lost lock is dropped)
            return True
        info = self._read(self._lock_path_for_key(key))
        return info is not None and info.get("holder") == holder and info["expires"] > time.time()

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (self.wait if timeout is None else timeout)
        while self.is_locked(key):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.wait_for_lock, key, timeout)


class ObjectStoreLocks(SignatureLocks):
    """The same locks as objects under `{root}/.dbnd/locks/` of an S3, GCS or Azure data root: a lock is made with
    a conditional write (fsspec `mode="create"`: S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure
    `overwrite=False`), so of two processes making it at once one fails."""

    def __init__(self, uri: str, expiry: float = 30.0, wait: float = 3600.0) -> None:
        from dbnd_prefect.targets.filesystem import filesystem_for_uri

        self.uri = uri.rstrip("/")
        self.fs, self.root = filesystem_for_uri(self.uri)
        self.lock_files_directory = self.uri  # type: ignore[assignment] - shown in messages
        self._locks = {}
        self.expiry, self.wait = float(expiry), float(wait)
        self._init_renewals()
        self._unserialized: set[tuple[str, str]] = set()  # (key, holder) whose lock the store could not keep

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "expiry": self.expiry, "wait": self.wait}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["expiry"], state["wait"])  # type: ignore[misc]

    def _ensure_lock_files_directory_exists(self) -> None:
        pass  # object stores have no folders

    def _lock_path_for_key(self, key: str) -> Any:
        return f"{self.root.rstrip('/')}/{key.replace('/', '_')}.lock"

    def _load(self, path: Any) -> bytes | None:
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def _age(self, path: Any) -> float | None:
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        modified = info.get("LastModified") or info.get("last_modified") or info.get("mtime")  # S3, Azure, GCS
        if isinstance(modified, str):
            import datetime as dt

            modified = dt.datetime.fromisoformat(modified.replace("Z", "+00:00"))
        return time.time() - modified.timestamp() if modified is not None else 0.0

    def _create(self, path: Any, data: bytes) -> bool:
        try:
            self.fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False

    def _replace(self, path: Any, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def _remove(self, path: Any) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    # A store that cannot keep locks right now (a missing bucket, refused credentials, an outage) must not turn
    # into a lock error: the run goes on unserialized, and the task's own read or write meets the store and
    # reports it with its URI (and its retries apply). Only a lock held by another run makes a run wait.

    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                     hold_timeout: float | None = None) -> bool:
        try:
            return super().acquire_lock(key, holder, acquire_timeout, hold_timeout)
        except LockWaitTimeout:
            raise
        except Exception:  # noqa: BLE001 - see above
            self._unserialized.add((key, holder))
            return True

    def release_lock(self, key: str, holder: str) -> None:
        self._unserialized.discard((key, holder))
        try:
            super().release_lock(key, holder)
        except Exception:  # noqa: BLE001 - see above
            pass

    def is_locked(self, key: str, use_cache: bool = False) -> bool:
        if any(k == key for k, _ in self._unserialized):
            return False
        try:
            return super().is_locked(key, use_cache)
        except Exception:  # noqa: BLE001 - see above
            return False

    def is_lock_holder(self, key: str, holder: str) -> bool:
        if (key, holder) in self._unserialized:
            return True
        try:
            return super().is_lock_holder(key, holder)
        except Exception:  # noqa: BLE001 - see above
            return True


__all__ = ["signature_locks", "SignatureLocks", "ObjectStoreLocks", "LockWaitTimeout", "LOCKING_STORES"]
