"""Repositories as a server keeps them (everything in one store); no HTTP: ``server/`` maps routes onto this."""
