"""The stand-in releases and their mirror, as mmupgrade's tests use them.

Imported rather than moved to tests/conftest.py: pytest registers them again for this folder, so these
tests get their own mirror (a fraction of a second to start) whose release list other tests never extend.
"""

from __future__ import annotations

from tests.mmupgrade.conftest import mirror, releases

__all__ = ["mirror", "releases"]
