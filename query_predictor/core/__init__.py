"""What training and serving share: the raw-log schema, the featurizer and the model loader."""
