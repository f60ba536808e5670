"""Reference Footage Library settings, re-exported from :mod:`dubops.config.library_settings`.

They are the ``library`` section of ``DubOpsConfig``, so they live in the library's
config (which must not import the feature store); this module keeps
``from dubops.feature_store.settings import ...`` working.
"""

from __future__ import annotations

from dubops.config.library_settings import Backend, LibraryConfig

__all__ = ["Backend", "LibraryConfig"]
