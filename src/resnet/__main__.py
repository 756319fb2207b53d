"""`python -m resnet` is the `resnet` command."""

import sys

from .cli import main

sys.exit(main())
