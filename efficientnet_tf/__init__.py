"""EfficientNet in Keras 3."""
