"""The ``tuneyard`` command line."""
