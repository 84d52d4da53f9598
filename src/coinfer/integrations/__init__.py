"""coinfer's parts inside other serving systems (each imported only by who uses it)."""
