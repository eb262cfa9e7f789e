"""The one exception type a user can cause, so the CLI can print it as a sentence."""


class HavenError(Exception):
    """A problem the user can fix: the message is one sentence saying what is wrong and what to do.

    The CLI prints it without a traceback and exits non-zero; anything else is a bug and keeps
    its traceback.
    """


class TransientError(HavenError):
    """A failure worth retrying: a lost connection, a server restarting. Flows retry these (with
    backoff) and nothing else."""


class DataTestFailure(HavenError):
    """A dbt data test or a schema contract failed: the data is wrong, so retrying cannot help."""


def root_cause(error: BaseException) -> str:
    """The first line of the innermost cause of ``error`` (what a library wrapped), no period."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__
