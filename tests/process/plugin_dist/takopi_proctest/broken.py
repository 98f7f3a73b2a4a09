"""An engine plugin whose import fails."""

raise RuntimeError("proctest: broken on purpose")
