"""An engine plugin whose import fails (for ``takopi plugins --load``)."""

raise RuntimeError("clitest: broken on purpose")
