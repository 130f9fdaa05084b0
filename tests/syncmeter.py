"""Lip-sync measurement for tests: the library's (``linly_push.sync``), under the name the tests use."""

from linly_push.sync import FLASH_LUMA, SyncReport, measure

__all__ = ["FLASH_LUMA", "SyncReport", "measure"]
