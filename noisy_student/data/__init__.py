"""TFRecord codecs and tf.data input pipelines."""
