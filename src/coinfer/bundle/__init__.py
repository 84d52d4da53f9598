"""A model exported for runtimes other than PyTorch: each cut's front and back as ONNX with a
manifest (``manifest``: read without torch; ``export``: written with it)."""
