"""The run directory: stage and folder names and the plan of a run (``layout``), the manifest
and the settings each stage depends on (``directory``), the lock one process holds on it
(``lock``) and which share of sharded work a worker does (``workers``). No TensorFlow model
code. May import the top-level modules and ``data`` (the labels file); nothing above."""
