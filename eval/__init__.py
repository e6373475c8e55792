"""Eval stage: score a train.npz on an eval.pb with DataPerf's fixed protocol.

    python -m eval --eval_file=path/to/eval.pb --train_file=path/to/train.npz

The scorer is also a function, for benchmarks::

    from eval.scoring import score
    result = score(train_x, train_y, eval_x, eval_y, label_names)   # result.score
"""
