"""Apache Beam on Dask: Beam's DaskRunner with the translation gaps the build hits filled in.

``build-dataset --runner DaskRunner`` runs this runner. With ``--dask_client_address
HOST:PORT`` (or ``--dask_scheduler_file FILE``) it submits to a running
``dask.distributed`` scheduler, exactly as on a cluster; without one it starts a
``LocalCluster`` of ``--dask_local_workers`` worker processes (build-dataset passes
``--workers``), never more than this machine's cores, one thread each, and shuts it
down when the pipeline ends, whether it succeeded or not.

Beam 2.77's ``apache_beam.runners.dask`` translates a pipeline into ``dask.bag``
operations. Run on this project's pipeline it fails or loses data, for reasons
checked one by one on Beam 2.77.0 with dask/distributed 2026.8.0 (docs/SCALE.md,
"Dask"):

- ``beam.io.Read`` (so ``ReadFromText``) has no translation: the step yields
  ``None`` and the next fails with ``'NoneType' object has no attribute 'map'``.
- Elements a DoFn emits from ``finish_bundle`` are dropped: the bundle's outputs
  are collected before ``finish_bundle`` runs. ``BatchElements`` emits every
  bundle's last batch there, so clips silently go missing (10 elements through
  ``BatchElements(3)`` come out as 9).
- A ParDo's tagged outputs are not separated: ``with_outputs("skipped", main=...)``
  gives the same bag, every output mixed, to the main and the tagged PCollection.
- ``DoFn.setup`` runs for every partition (and ``teardown`` after it), so a model
  loaded in ``setup`` is loaded again for every bundle.
- ``Reshuffle`` is a no-op: a single read split stays on one worker.
- Only the last transform's bag is computed; other leaves would never run.
- ``result.metrics()`` raises ``NotImplementedError`` (not fixed here: the
  build then takes its skip counts from the staged per-shard lists).

This module keeps Beam's own translations of ``Create``, ``GroupByKey`` and
``Flatten`` and replaces the rest: reads become one partition per source split,
a ParDo runs one cached DoFn instance per worker thread (``setup`` once, outputs
collected after ``finish_bundle``, tagged outputs kept apart), ``Reshuffle``
repartitions so every worker gets work, and every leaf of the pipeline is
computed. GroupByKey shuffles with Dask's task-based shuffle, which works across
machines.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import uuid
from typing import Any

from dataset_builder.beam_pipeline import import_beam

beam = import_beam()

import dask  # noqa: E402
import dask.bag as db  # noqa: E402
from apache_beam import pvalue  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler  # noqa: E402
from apache_beam.runners.dask import dask_runner as beam_dask  # noqa: E402
from apache_beam.runners.dask import overrides as beam_overrides  # noqa: E402
from apache_beam.runners.dask import transform_evaluator as beam_ops  # noqa: E402
from apache_beam.runners.runner import PipelineResult, PipelineState  # noqa: E402
from apache_beam.transforms.window import GlobalWindows  # noqa: E402
from apache_beam.utils.windowed_value import WindowedValue  # noqa: E402

#: The runner's name on build-dataset's command line, and the class Beam is given.
RUNNER_NAME = "DaskRunner"
RUNNER_PATH = f"{__name__}.DaskRunner"
#: Bytes of a text input (the build's plan: ~130 bytes a clip, so ~2,000 clips) per read partition.
DEFAULT_READ_BUNDLE_BYTES = 256 * 1024


class LocalClusterOptions(PipelineOptions):
    """Options of this runner beyond Beam's ``DaskOptions``."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--dask_local_workers", type=int, default=None,
            help="worker processes of the LocalCluster started when no scheduler is given "
                 "(default and maximum: the machine's cores)")
        parser.add_argument(
            "--dask_read_bundle_bytes", type=int, default=DEFAULT_READ_BUNDLE_BYTES,
            help="bytes of a file input per Dask partition")


def local_worker_count(requested: int | None) -> int:
    """Worker processes for a LocalCluster: as requested, at least 1, at most the cores."""
    cores = os.cpu_count() or 1
    if requested is None or requested < 1:
        return cores
    return min(requested, cores)


# ----------------------------------------------------------------------------- ParDo


class _Collect(Receiver):
    """Receives one output (tag) of a DoFn into the bundle's list."""

    def __init__(self, tag, sink: list, tagged: bool):
        self.tag = tag
        self.sink = sink
        self.tagged = tagged

    def receive(self, windowed_value):
        value = windowed_value.value if isinstance(windowed_value, WindowedValue) else windowed_value
        self.sink.append((self.tag, value) if self.tagged else value)


class _Receivers(dict):
    def __init__(self, sink: list, tagged: bool):
        super().__init__()
        self.sink = sink
        self.tagged = tagged

    def __missing__(self, tag):
        receiver = self[tag] = _Collect(tag, self.sink, self.tagged)
        return receiver


@dataclasses.dataclass
class _LiveDoFn:
    invoker: Any
    sink: list


#: DoFn instances set up in this worker process: {(run, step, thread): _LiveDoFn}.
_LIVE: dict[tuple[str, str, int], _LiveDoFn] = {}
_LIVE_LOCK = threading.Lock()


def _live_dofn(run: str, step: str, fn, side_inputs, args, kwargs, window_fn, tagged: bool) -> _LiveDoFn:
    """This thread's instance of a step's DoFn, set up on first use (once per worker thread).

    Instances of earlier runs (a long-lived cluster serves many pipelines) are torn
    down when a new run first shows up.
    """
    key = (run, step, threading.get_ident())
    live = _LIVE.get(key)
    if live is not None:
        return live
    with _LIVE_LOCK:
        stale = [k for k in _LIVE if k[0] != run]
        for k in stale:
            try:
                _LIVE.pop(k).invoker.invoke_teardown()
            except Exception:  # noqa: BLE001 - teardown is best effort in Beam too
                pass
    sink: list = []
    receivers = _Receivers(sink, tagged)
    handler = _OutputHandler(window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
                             per_element_output_counter=None, output_batch_converter=None,
                             process_yields_batches=False, process_batch_yields_elements=False)
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn), handler, context=DoFnContext(step, state=None), side_inputs=side_inputs,
        input_args=args, input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
    invoker.invoke_setup()
    live = _LIVE[key] = _LiveDoFn(invoker, sink)
    return live


def _run_bundle(items, run, step, fn, side_inputs, args, kwargs, window_fn, tagged):
    """One Dask partition through one DoFn: a Beam bundle, outputs kept after finish_bundle."""
    live = _live_dofn(run, step, fn, side_inputs, args, kwargs, window_fn, tagged)
    live.sink.clear()
    live.invoker.invoke_start_bundle()
    for item in items:
        if not isinstance(item, WindowedValue):
            item = GlobalWindows.windowed_value(item)
        live.invoker.invoke_process(item)
    live.invoker.invoke_finish_bundle()
    out = list(live.sink)
    live.sink.clear()
    return out


@dataclasses.dataclass
class _ParDo(beam_ops.DaskBagOp):
    run: str = ""

    def apply(self, input_bag, side_inputs=None):
        transform = self.transform
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        tagged = len(self.applied.outputs) > 1
        return input_bag.map_partitions(_run_bundle, self.run, self.applied.full_label, transform.fn,
                                        side_inputs, list(args), kwargs, window_fn, tagged)


# ----------------------------------------------------------------------------- Read, Reshuffle


def _read_split(bundles):
    out = []
    for bundle in bundles:
        tracker = bundle.source.get_range_tracker(bundle.start_position, bundle.stop_position)
        out.extend(bundle.source.read(tracker))
    return out


@dataclasses.dataclass
class _Read(beam_ops.DaskBagOp):
    bundle_bytes: int = DEFAULT_READ_BUNDLE_BYTES

    def apply(self, input_bag, side_inputs=None):
        splits = list(self.transform.source.split(self.bundle_bytes))
        if not splits:
            return db.from_sequence([], npartitions=1)
        return db.from_sequence(splits, npartitions=len(splits)).map_partitions(_read_split)


@dataclasses.dataclass
class _Reshuffle(beam_ops.DaskBagOp):
    min_partitions: int = 1

    def apply(self, input_bag, side_inputs=None):
        if input_bag.npartitions >= self.min_partitions:
            return input_bag
        return input_bag.repartition(npartitions=self.min_partitions)


class _GroupByKey(beam_ops.DaskBagOp):
    """Beam's GroupByKeyOnly as a task-based Dask shuffle (the one that works across machines)."""

    def apply(self, input_bag, side_inputs=None):
        return input_bag.groupby(_first, shuffle="tasks").map(_group_values)


def _first(item):
    return item[0]


def _group_values(group):
    # GroupAlsoByWindow (Beam's own DoFn, next) wants the windowed values ReifyWindows made.
    key, items = group
    return key, [item[1] for item in items]


def _only_tag(item, tag) -> bool:
    return item[0] == tag


def _untag(item):
    return item[1]


def _count(partition):
    return [sum(1 for _ in partition)]


# ----------------------------------------------------------------------------- runner


class DaskRunnerResult(PipelineResult):
    """Waits for the Dask computation; closes the client, and the LocalCluster it started."""

    def __init__(self, client, futures, cluster=None):
        super().__init__(PipelineState.RUNNING)
        self.client = client
        self.futures = futures
        self.cluster = cluster

    def wait_until_finish(self, duration=None):
        from dask.distributed import wait

        try:
            timeout = None if duration is None else duration / 1000
            wait(self.futures, timeout=timeout)
            for future in self.futures:
                future.result()  # raises the worker's exception here
            self._state = PipelineState.DONE
        except BaseException:
            self._state = PipelineState.FAILED
            raise
        finally:
            self.close()
        return self._state

    def cancel(self):
        self.client.cancel(self.futures)
        self.close()
        self._state = PipelineState.CANCELLED
        return self._state

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None

    def metrics(self):
        raise NotImplementedError("the Dask runner does not report Beam metrics")


def _connect(options):
    """A distributed Client: to the given scheduler, else to a new LocalCluster (returned too)."""
    from dask.distributed import Client, LocalCluster

    dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
    client_kwargs = {k: v for k, v in dask_options.items() if k not in ("npartitions", "partition_size")}
    if client_kwargs.get("address") or client_kwargs.get("scheduler_file"):
        return Client(**client_kwargs), None
    workers = local_worker_count(options.view_as(LocalClusterOptions).dask_local_workers)
    # The scheduler and the nannies of a local cluster live in this process and log
    # every start, connection and shutdown; a failure reaches the user as the
    # pipeline's one-line error anyway.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.CRITICAL,
                           # Import Beam on the workers as the launcher does (quietly), before any task.
                           preload=[__name__])
    try:
        return Client(cluster, **{k: v for k, v in client_kwargs.items() if k != "address"}), cluster
    except BaseException:
        cluster.close()
        raise


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with reads, bundle outputs, tagged outputs, DoFn reuse and
    reshuffles translated so that the build's pipeline runs unchanged (see the module doc)."""

    def run_pipeline(self, pipeline, options):
        client, cluster = _connect(options)
        try:
            futures = self._submit(pipeline, options, client)
        except BaseException:
            client.close()
            if cluster is not None:
                cluster.close()
            raise
        return DaskRunnerResult(client, futures, cluster)

    def _submit(self, pipeline, options, client):
        dask_options = options.view_as(beam_dask.DaskOptions)
        extra = options.view_as(LocalClusterOptions)
        threads = sum(client.nthreads().values()) or 1
        min_partitions = getattr(dask_options, "npartitions", None) or 2 * threads
        pipeline.replace_all(beam_overrides.dask_overrides())
        visitor = _BagVisitor(run=uuid.uuid4().hex, read_bundle_bytes=extra.dask_read_bundle_bytes,
                              min_partitions=min_partitions,
                              bag_kwargs=beam_dask.DaskOptions._extract_bag_kwargs(
                                  dask_options.get_all_options(drop_default=True, current_only=True)))
        pipeline.visit(visitor)
        leaves = visitor.leaves()
        # Only the side effects of the leaves matter (the build writes files): bring
        # back a count per partition, not the elements.
        counted = [bag.map_partitions(_count) for bag in leaves]
        return client.compute(list(dask.optimize(*counted)))


class _BagVisitor(beam.pipeline.PipelineVisitor):
    """Builds one Dask bag per applied transform, in topological order."""

    def __init__(self, run: str, read_bundle_bytes: int, min_partitions: int, bag_kwargs: dict):
        self.run = run
        self.read_bundle_bytes = read_bundle_bytes
        self.min_partitions = min_partitions
        self.bag_kwargs = bag_kwargs
        self.bags: dict = {}
        self.multi_output: set = set()
        self.consumed: set = set()

    def _input_bag(self, pcoll):
        producer = pcoll.producer
        self.consumed.add(producer)
        bag = self.bags.get(producer)
        if bag is None:
            return None
        if producer in self.multi_output:
            return bag.filter(functools.partial(_only_tag, tag=pcoll.tag)).map(_untag)
        return bag

    def _op(self, node):
        kind = type(node.transform)
        if isinstance(node.transform, beam.ParDo):
            if len(node.outputs) > 1:
                self.multi_output.add(node)
            return _ParDo(node, bag_kwargs=self.bag_kwargs, run=self.run)
        if kind is beam_overrides._Read:
            return _Read(node, bag_kwargs=self.bag_kwargs, bundle_bytes=self.read_bundle_bytes)
        if kind is beam_overrides._Reshuffle:
            return _Reshuffle(node, bag_kwargs=self.bag_kwargs, min_partitions=self.min_partitions)
        if kind is beam_overrides._GroupByKeyOnly:
            return _GroupByKey(node, bag_kwargs=self.bag_kwargs)
        if kind in beam_ops.TRANSLATIONS:  # Create, Flatten
            return beam_ops.TRANSLATIONS[kind](node, bag_kwargs=self.bag_kwargs)
        if kind.__name__ in ("Impulse", "_Impulse") or not node.inputs:
            raise NotImplementedError(f"the Dask runner cannot translate {node.full_label} ({kind.__name__})")
        return beam_ops.NoOp(node, bag_kwargs=self.bag_kwargs)

    def visit_transform(self, node) -> None:
        op = self._op(node)
        inputs = [self._input_bag(p) for p in node.inputs if not isinstance(p, pvalue.PBegin)]
        if isinstance(op, beam_ops.Flatten):
            bag_input = inputs
        elif inputs:
            bag_input = inputs[0]
        else:
            bag_input = None
        side_inputs = None
        if node.side_inputs:
            from apache_beam.transforms.sideinputs import SideInputMap

            side_inputs = []
            for side in node.side_inputs:
                side_bag = self._input_bag(side.pvalue)
                side_inputs.append(SideInputMap(type(side), side._view_options(),
                                                beam_ops.DaskBagWindowedIterator(side_bag,
                                                                                 side._window_mapping_fn)))
        self.bags[node] = op.apply(bag_input, side_inputs)

    def leaves(self) -> list:
        return [bag for node, bag in self.bags.items() if node not in self.consumed and bag is not None]
