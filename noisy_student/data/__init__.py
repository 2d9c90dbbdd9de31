"""Data: TFRecord codecs and shards, the labels file (``labels.txt``), image preprocessing and
RandAugment, bad-data guards, and the three tf.data input pipelines (labeled, unlabeled,
pseudo-labeled). Owns every byte format a run reads or writes besides models and the manifest.
May import the top-level modules (``atomic_io``, ``targets``) only; no other subpackage."""
