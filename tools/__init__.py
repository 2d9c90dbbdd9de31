"""Checkout-only entry points: ``python -m tools.X`` runs the tool whose code lives in
``noisy_student.cli`` (installed as console scripts). This folder is not part of the
installed package."""
