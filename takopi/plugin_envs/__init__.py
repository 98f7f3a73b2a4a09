"""Managed plugin environments: one venv per plugin distribution, next to the config.

``takopi plugins install|list|upgrade|remove`` (:mod:`takopi.cli.plugins_cmd`) drive
:class:`~takopi.plugin_envs.manager.PluginEnvManager`. Each environment holds the plugin and
*this* takopi (never the reference one from PyPI), on an interpreter that satisfies the
plugin's Requires-Python when one is installed; ``[plugins.<id>] python`` then makes the
supervisor run that plugin's worker there.
"""

from takopi.plugin_envs.errors import PluginEnvError

__all__ = ["PluginEnvError"]
