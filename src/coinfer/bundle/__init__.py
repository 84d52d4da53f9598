"""A model exported for runtimes other than PyTorch: each cut's front and back as ONNX with a
manifest. ``export`` writes it (with torch); ``manifest`` reads it, ``runtime`` runs its parts
in ONNX Runtime and ``view`` makes its cut table — all three without torch."""
