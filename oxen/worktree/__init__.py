"""The working tree on disk: paths, ignore rules, status, reading files in (ingest) and writing them out."""
