"""``takopi.__version__`` is a literal (cheap to import); it must match the installed metadata."""

from __future__ import annotations

from importlib.metadata import version

import takopi


def test_version_literal_matches_distribution_metadata() -> None:
    assert takopi.__version__ == version("takopi")
