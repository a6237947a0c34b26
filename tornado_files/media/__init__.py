"""Inside a media worker process: derivative images and extracted metadata for one stored file.

``kinds`` is light (the server imports it to decide whether a file gets a job); everything
else decodes untrusted media and is meant to run only in ``python -m
tornado_files.media.worker`` (docs/media.md). Importing this package imports nothing heavy.
"""
