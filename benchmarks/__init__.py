"""The benchmarks: scripts that measure and write JSON, and ``render.py``, which draws it.

Run each script as a file (``python benchmarks/run.py``); it imports the modules beside it:
``machine`` (the record of where a result was measured), ``variants`` (the options and
storage choices measured), ``workloads`` (the parameter shapes), ``step`` (the jitted step
and XLA's accounting of it) and ``timing`` (interleaved rounds and their statistics).
``tests/test_cost.py`` imports the same modules as ``benchmarks.variants`` and so on.
"""
