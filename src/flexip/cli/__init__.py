"""The `flexip` command line: thin shells over library calls."""
