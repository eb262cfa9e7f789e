"""The one exception type a user can cause, so the CLI can print it as a sentence."""


class HavenError(Exception):
    """A problem the user can fix: the message is one sentence saying what is wrong and what to do.

    The CLI prints it without a traceback and exits non-zero; anything else is a bug and keeps
    its traceback.
    """
