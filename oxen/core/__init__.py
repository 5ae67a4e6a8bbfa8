"""The repository core: ``Repository`` (its parts, HEAD, revisions, commits) and ``Refs``; no verbs."""
