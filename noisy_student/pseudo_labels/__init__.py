"""Pseudo labels, the middle of the pipeline: the teacher's pass over the unlabeled shards
(``labeling``), and the confidence filter with class balancing (``filtering``; per-shard work in
``filter_shards``, the per-class plan in ``balance``). How a teacher output becomes a target
distribution is the top-level ``noisy_student.targets``. May import the top-level modules,
``data``, ``run`` and ``training``; nothing above."""
