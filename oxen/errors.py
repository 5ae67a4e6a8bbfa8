"""Every error the core raises on purpose. The CLI turns these into one-line messages."""


class OxenError(Exception):
    """Base class: a clear, user-facing problem (bad input, missing repo, conflict...)."""

    exit_code = 1


class NotARepository(OxenError):
    pass


class RepositoryExists(OxenError):
    pass


class PathError(OxenError):
    """A path outside the repository, missing, or otherwise unusable."""


class IsAFolder(PathError):
    """A path that names a folder where a file was wanted."""


class RefError(OxenError):
    """An unknown branch, commit or revision."""


class NothingToCommit(OxenError):
    pass


class DirtyWorkingTree(OxenError):
    """An operation would overwrite uncommitted changes."""


class MergeConflict(OxenError):
    """A merge stopped with conflicting paths (listed in ``paths``)."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


class RefConflict(OxenError):
    """A ref did not hold the value a compare-and-swap expected."""


class CorruptObject(OxenError):
    """A stored object whose bytes do not match its id, or that cannot be decoded."""


class MissingObject(OxenError):
    """An object the repository should hold is not in its store."""


class ConfigError(OxenError):
    pass


class FormatError(OxenError):
    """A repository or server written in a format this version does not read."""


class InvalidInput(OxenError):
    """Malformed input from a client: bad ids, bad msgpack, a pack that does not verify."""


class IncompletePush(InvalidInput):
    """A branch update naming commits that reach objects the server does not hold: a push
    interrupted, or one told "the server has X" just before gc collected X.  Asking again
    which objects the server lacks, and sending them, mends it."""


class NotFound(OxenError):
    pass


class AlreadyExists(OxenError):
    pass


class NonFastForward(OxenError):
    """A push that would drop commits the other side has."""


class RemoteError(OxenError):
    """The remote refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of a refusal; None when there was no answer
