"""edgedistill: distil, quantize and benchmark BERT-family text classifiers for edge hardware.

This package is the ground floor every stage shares: the recipe schema's shared parts, the run-folder
layout, the method registry, checkpoint loading, the runtime interface, measurement primitives,
metrics, io and provenance. It imports no stage (``distill``, ``export``, ``bench``, ``dashboard``)
and not the command line above them (``edgedistill_cli``); ``.importlinter`` holds it to that.
Importing it loads neither torch nor transformers.
"""
