"""The one error type of the data layer."""


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt, or a fetch failed.

    The message always names the file (or directory) and says how to fix it, usually with the
    command to run (``bregman data fetch mnist``).
    """
