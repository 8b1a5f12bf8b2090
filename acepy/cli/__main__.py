"""``python -m acepy.cli``: the ``acepy`` command."""

import sys

from . import main

sys.exit(main())
