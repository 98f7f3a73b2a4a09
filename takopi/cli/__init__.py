"""Command-line front-ends: ``takopi`` (:mod:`takopi.cli.main`) and ``takopictl``
(:mod:`takopi.cli.ctl`).

``takopi`` runs the supervisor, onboards a new user and edits the config; ``takopictl`` talks to
a running supervisor over its control socket. Both are click apps; each subcommand lives in a
small module of its own.
"""
