"""``python -m eval --eval_file=eval.pb --train_file=train.npz``: see :mod:`eval.cli`."""

import sys

try:
    from eval.cli import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: still one line
    print("python -m eval: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
