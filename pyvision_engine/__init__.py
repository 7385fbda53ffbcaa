"""pyvision_engine: a small, fast CPU engine for convolutional neural networks."""
