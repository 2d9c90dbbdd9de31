"""What a finished run tells a person: its results as rows read from the manifest (``rows``: one per
stage and per recorded benchmark result), and the views of those rows: the table printed at the end
(``summary``, also the demo's) and ``report.md`` with its figures (``report``, which also reads the
filter's outputs). May import every package below it (top level, ``data``, ``run``, ``training``,
``pseudo_labels``, ``evaluation``, ``export``); nothing above."""
