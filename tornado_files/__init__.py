"""tornado-files: a Tornado server for very large file uploads."""

__version__ = "0.1.0"
