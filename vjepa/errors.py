"""Errors a user can fix. Their message is one line naming what is wrong and where."""


class UserError(Exception):
    """A problem with user input (a spec, an override, a path, a dataset); shown without traceback."""


class SpecError(UserError):
    """A spec or override failed validation. Nothing has been written when it is raised."""


class DataError(UserError):
    """A dataset, index or video cannot be used as asked."""


class CheckpointError(UserError):
    """A checkpoint file cannot be read or does not match the model."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded; the last good checkpoint was kept."""


class StageInterrupted(RuntimeError):
    """A stage stopped on request (SIGTERM/SIGUSR2: preemption, a time limit, a cancel) after
    saving its resume state; running it again continues. Logged as one line, not a traceback."""
