"""``python -m eval --eval_file=eval.pb --train_file=train.npz``: see :mod:`eval.cli`."""

import sys

from eval.cli import main

sys.exit(main())
