"""``python -m takopi.worker``: see :mod:`takopi.worker.main`."""

from takopi.worker.main import main

raise SystemExit(main())
