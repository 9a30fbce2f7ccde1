"""A torch.distributed Store (TCPStore, FileStore, torchrun's c10d store...) as an fcp_store.

The library calls set/get from its own threads while it creates the executor; ctypes takes the
GIL for each callback. An exception in the store becomes a nonzero return (the library then
fails fcp_executor_new) and is kept in `errors` so that the caller can say what went wrong.
"""

from __future__ import annotations

import ctypes
import datetime

import fcp_capi as _capi


class StoreAdapter:
    """Owns the ctypes callbacks (they must outlive every call into the library that uses them)."""

    def __init__(self, store):
        for method in ("set", "get", "wait"):
            if not callable(getattr(store, method, None)):
                raise TypeError(f"rendezvous: a torch.distributed Store (with set/get/wait), "
                                f"'file:DIR' or 'coordinator:HOST:PORT', got {type(store)!r}")
        self._store = store
        self.errors = []
        self._set = _capi.STORE_SET(self._on_set)
        self._get = _capi.STORE_GET(self._on_get)
        self.struct = _capi.Store(None, self._set, self._get)

    def _on_set(self, _context, key, value, size):
        try:
            self._store.set(key.decode(), ctypes.string_at(value, size))
            return 0
        except Exception as error:  # noqa: BLE001 - reported through the status code
            self.errors.append(f"set {key.decode(errors='replace')}: {error}")
            return 1

    def _on_get(self, _context, key, value, capacity, size, timeout_seconds):
        name = key.decode(errors="replace")
        try:
            self._store.wait([name], datetime.timedelta(seconds=timeout_seconds))
            data = self._store.get(name)
            ctypes.memmove(value, data, min(len(data), capacity))
            size[0] = len(data)
            return 0
        except Exception as error:  # noqa: BLE001 - reported through the status code
            self.errors.append(f"get {name}: {error}")
            return 1
