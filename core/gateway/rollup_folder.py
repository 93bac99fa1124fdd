"""The background fold of settled calls into the roll-ups, one thread per database a process settles on.

A settled call waits for the roll-ups in `rollup_pending` (core/budgets/pending_rollups.py
says why). Each process that settles calls folds them about every `FOLD_EVERY_S`, when it
settled any since its last fold: a thread of its own, so that no caller's answer waits for a
fold. Readers of the roll-ups fold what is left first, so this only keeps each of their folds
small; if a process dies, its calls wait until the next fold of any process or reader.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

from sqlalchemy.engine import Engine

from core import db
from core.budgets import pending_rollups

FOLD_EVERY_S = 1.0
_log = logging.getLogger("quorum.gateway")


class _Folder:
    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        # Set by every settle and read once a tick: a plain attribute, as it is set for every
        # batch (a threading.Event's set() takes a lock).
        self.settled = False
        self.stopped = False  # the engines were disposed (tests, a forked worker)
        threading.Thread(target=self._run, name="quorum-rollup-folder", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(FOLD_EVERY_S)
            engine = self._engine()
            if engine is None or self.stopped:  # the engine is gone: nothing left to fold
                return
            if not self.settled:
                continue
            self.settled = False
            try:
                pending_rollups.fold_all(engine)
            except Exception as error:  # noqa: BLE001 - the next tick, or a reader, folds them
                self.settled = True
                _log.warning("gateway: folding settled calls into the roll-ups failed (%r); retrying", error)
            del engine


_folders: weakref.WeakKeyDictionary[Engine, _Folder] = weakref.WeakKeyDictionary()
_folders_lock = threading.Lock()


def _stop_all() -> None:
    with _folders_lock:
        for folder in _folders.values():
            folder.stopped = True
        _folders.clear()


db.on_dispose(_stop_all)


def settled(engine: Engine) -> None:
    """Calls were settled on `engine`: fold them within about FOLD_EVERY_S."""
    folder = _folders.get(engine)
    if folder is None:
        with _folders_lock:
            folder = _folders.get(engine)
            if folder is None:
                folder = _folders[engine] = _Folder(engine)
    folder.settled = True
