"""neurosurgeon."""
