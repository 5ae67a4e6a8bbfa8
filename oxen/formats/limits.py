"""Bounds every part agrees on (the client that writes, the server that accepts, the client
that checks out), so whatever a server accepts its clients can use. No imports: ``status``
reads these too."""

# Directories a tree may nest (a path has at most this many components): checked when a
# path is added, when a tree is read or rebuilt, and when a server receives one, so no walk
# of a hostile tree runs unbounded.
MAX_DEPTH = 128
