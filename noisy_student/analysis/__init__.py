"""Experiments made of whole runs: the compound-scaling grid search (candidates and their
objective in ``scaling_grid``, training and ranking them in ``scaling_search``). May import
every package below it (``pipeline`` included); not ``cli``."""
