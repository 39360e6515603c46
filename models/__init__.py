"""Keras convnets for augpipe's training runs (the registry arrives with the training issue)."""
