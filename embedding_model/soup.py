"""Average the weights of embedding models fine-tuned from one start (a "model soup").

Two fine-tunings of one checkpoint that differ only in their batches and dropout land
near each other in weight space, and their weights' mean is a model of its own, often
better than each and always less dependent on one run's last bits. ``train-hybrid
--from-head RUN --seed S`` makes such runs::

    python -m embedding_model.soup --out DIR RUN_A/export RUN_B/export [...]

Each input is a directory holding ``mswc_embedding.keras`` (and its metadata
``mswc_embedding.json``). They must have the same architecture, output gain and
training plan (``holdout.json``); nothing checks that they share a start, so averaging
unrelated models is on the caller (it gives a poor model, not an error). The output
directory gets the averaged ``mswc_embedding.keras``, its metadata (a new identity, the
members' identities and training summaries under ``soup``) and the plan, and is loaded
like any model by the ``mswc`` backend (``--model DIR``).

Exit status (:mod:`protos.errors`): 0 done, 1 bad input, 2 usage, 3 environment, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from protos.atomic import atomic_write_bytes, atomic_write_text
from protos.errors import EXIT_STATUS_HELP, EnvironmentProblem, InputError, run_cli

PROG = "python -m embedding_model.soup"
PLAN_NAME = "holdout.json"


def average_weights(models) -> list[np.ndarray]:
    """The element-wise mean (in float64, cast back) of the weights of Keras models of one architecture."""
    lists = [m.get_weights() for m in models]
    return [np.mean(np.stack([w[i].astype(np.float64) for w in lists]), axis=0).astype(lists[0][i].dtype)
            for i in range(len(lists[0]))]


def _config(model) -> str:
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def make_soup(model_dirs: list[Path], out: Path) -> dict:
    """Average the models in ``model_dirs`` into ``out``; returns the metadata written."""
    from embedding_model.backends import weights_identity
    from embedding_model.export import KERAS_NAME, META_NAME, _save_keras, load_embedder

    if len(model_dirs) < 2:
        raise InputError("give at least two model directories to average")
    if out.resolve() in {d.resolve() for d in model_dirs}:
        raise InputError(f"--out {out} is one of the models: write the average elsewhere")
    metas, plans = [], []
    for d in model_dirs:
        if not (d / KERAS_NAME).is_file():
            raise InputError(f"{d / KERAS_NAME} not found: each argument is a directory holding a trained model")
        meta_path = d / META_NAME
        metas.append(json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {})
        plans.append((d / PLAN_NAME).read_bytes() if (d / PLAN_NAME).is_file() else None)
    gains = {float(m.get("output_gain", 1.0)) for m in metas}
    if len(gains) > 1:
        raise InputError(f"the models have different output gains ({', '.join(map(str, sorted(gains)))}): "
                         "average models exported with the same --output-gain")
    if len(set(plans)) > 1:
        raise InputError(f"the models were trained on different plans ({PLAN_NAME} differs): "
                         "average fine-tunings of one run's plan")
    models = [load_embedder(d) for d in model_dirs]
    for d, m in zip(model_dirs[1:], models[1:]):
        if _config(m) != _config(models[0]):
            raise InputError(f"{d} has another architecture than {model_dirs[0]}: only models of one "
                             "architecture can be averaged")
    soup = models[0]
    soup.set_weights(average_weights(models))
    out.mkdir(parents=True, exist_ok=True)
    _save_keras(soup, out)
    meta = {key: metas[0][key] for key in ("kind", "output_gain") if key in metas[0]}
    meta.update(identity=weights_identity(soup), dim=int(soup.output_shape[-1]), params=int(soup.count_params()),
                soup={"of": [m.get("identity") for m in metas], "training": [m.get("training") for m in metas]})
    atomic_write_text(out / META_NAME, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    if plans[0] is not None:
        atomic_write_bytes(out / PLAN_NAME, plans[0])
    return meta


def main(argv: list[str] | None = None) -> int:
    """Run the soup command; returns the exit status (see :mod:`protos.errors`)."""
    return run_cli(PROG, _run, argv)


def _run(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG, epilog=EXIT_STATUS_HELP,
        description="Average the weights of embedding models of one architecture, fine-tuned from one start "
        "(e.g. train-hybrid --from-head RUN --seed S), into a new model directory.")
    p.add_argument("models", nargs="+", type=Path, help="directories holding mswc_embedding.keras")
    p.add_argument("--out", required=True, type=Path, help="output directory for the averaged model")
    args = p.parse_args(argv)
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise EnvironmentProblem("averaging models needs TensorFlow: pip install 'dataperf-speech[pipeline]'") from exc
    meta = make_soup(args.models, args.out)
    print(f"{PROG}: {args.out}: the mean of {len(args.models)} models, identity {meta['identity']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
