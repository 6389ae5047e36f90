"""Optuna hyperparameter studies over the pipeline (``scenellm tune``).

``space`` (the study definition, ``params/search.yaml``), ``storage`` (journal file or
database, heartbeat), ``study`` (create / join, MLflow parent run), ``objective`` (one trial),
``optimize`` (the worker loop), ``workers`` (extra processes), ``report`` / ``plots`` /
``promote`` (after the search).
"""
