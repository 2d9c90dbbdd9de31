"""Noisy Student self-training on TensorFlow 2."""
