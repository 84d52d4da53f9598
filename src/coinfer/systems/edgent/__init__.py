"""edgent."""
