"""The command-line client: ``tornado-files upload|download|ls|rm`` over the public HTTP API."""
