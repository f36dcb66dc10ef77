"""What training and serving share: the raw-log schema (and, later, the featurizer)."""
