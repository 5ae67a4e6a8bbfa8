"""The local verbs, each a module of functions over a ``Repository``."""
