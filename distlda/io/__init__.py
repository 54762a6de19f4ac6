"""Files without pickle: checksummed containers of raw arrays plus JSON, and memory-map helpers."""
