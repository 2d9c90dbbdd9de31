"""What a finished run tells a person: the per-stage table printed at the end (``summary``)
and ``report.md`` with its figures (``report``). Reads the run directory and the outputs of the
stages. May import every package below it (top level, ``data``, ``run``, ``training``,
``pseudo_labels``, ``evaluation``, ``export``); nothing above."""
