"""From audio to samples.pb / eval.pb: corpus sources, the DataPerf protocol, the build.

Command-line tools: ``build-dataset`` (:mod:`dataset_builder.cli`),
``extract-clips`` (:mod:`dataset_builder.extract`), ``synthesize-corpus``
(:mod:`dataset_builder.synth`) and the demo (``python -m dataset_builder.demo``).
Importing the package is cheap: no TensorFlow, no audio stack, until a stage needs it.
"""
