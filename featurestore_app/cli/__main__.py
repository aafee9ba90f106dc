"""``python -m featurestore_app.cli``: the same as the ``featurestore`` command."""

import sys

from featurestore_app.cli import main

sys.exit(main())
