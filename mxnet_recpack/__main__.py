"""``python -m mxnet_recpack`` runs the ``recpack`` command."""
import sys

from .cli import main

sys.exit(main())
