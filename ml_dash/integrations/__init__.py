"""Framework integrations, each importing its framework only when its own module is imported:

* ``ml_dash.integrations.lightning``: ``MLDashLogger``, a ``lightning.pytorch`` logger;
* ``ml_dash.integrations.transformers``: ``MLDashCallback``, a ``transformers.TrainerCallback``;
* ``ml_dash.integrations.accelerate``: ``MLDashTracker``, an ``accelerate`` tracker.

They use only the public API (``from ml_dash import Experiment``); see docs/integrations.md.
"""
