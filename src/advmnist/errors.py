"""One exception hierarchy: the CLI turns any `AdvmnistError` into one line and exit code 2."""


class AdvmnistError(Exception):
    """Base class of every project-specific failure a user can cause or fix."""


class DataError(AdvmnistError):
    """A data file is missing, corrupt, truncated or has the wrong checksum."""


class ConfigError(AdvmnistError):
    """A configuration file or value makes no sense."""


class CheckpointError(AdvmnistError):
    """A checkpoint is unreadable, tampered with, or holds another architecture."""


class RunDirError(AdvmnistError):
    """An output folder already holds a run, or a resume folder holds another configuration."""


class FactoryError(AdvmnistError):
    """A user's model factory (`package.module:function`) could not be imported, or raised.

    Raised `from` the original exception, so a debug mode can show the user's traceback.
    """
