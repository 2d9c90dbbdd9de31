"""Export of a trained classifier: the SavedModel with its serving signatures
(``saved_model``), the deployment formats checked against the Keras model (``deploy``: portable
``.keras``, TFLite via ``tflite``, ONNX) and the one list of artifacts and what each returns
(``artifacts``). May import the top-level modules, ``data`` and ``training``; nothing above."""
