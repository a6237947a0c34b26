"""Media jobs in the server: settings, the worker-process pool and the job runner
(docs/media.md). What runs inside a worker process is ``tornado_files.media``."""
