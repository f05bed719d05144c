"""``python -m stackmff`` runs the command-line tool."""

import sys

from stackmff.cli import main

sys.exit(main())
