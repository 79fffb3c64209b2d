"""The store's records as the readers receive them, and the one store failure they handle.

The command line and ``web/`` reach the store only through ``read/`` (the read model, its commands) and the
store's admin door (:mod:`monitor.store.admin`): they take the plain records the read model answers with from
here, never from ``monitor.store`` itself.
"""

from monitor.store.records import (
    ChangeRecord,
    HistoryFilter,
    SnapshotRecord,
    StoreError,
    TransitionRecord,
)

__all__ = ["ChangeRecord", "HistoryFilter", "SnapshotRecord", "StoreError", "TransitionRecord"]
