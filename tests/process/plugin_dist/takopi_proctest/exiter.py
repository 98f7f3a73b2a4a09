"""An engine plugin that kills its process while being imported."""

import os

os._exit(9)
