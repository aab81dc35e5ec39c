"""One exception type for bad user input: the CLI turns it into one line and a non-zero exit; and the one-line
reason a file that does not load gives."""

import pickle


class PiaError(Exception):
    """A problem with the user's input (paths, data, config, checkpoints). The message is one line."""


def torch_load_failure(err: Exception) -> str:
    """Why `torch.load` failed, in one line: the weights-only unpickler's own reason rather than its advice."""
    text = str(err).strip()
    if isinstance(err, EOFError):
        return "the file is empty or cut short"
    if isinstance(err, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].splitlines()[0].strip()
        return f"refused by the weights-only loader ({reason.rstrip('.')})"
    if isinstance(err, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
        # the unpickler's own reason (e.g. a blocked GLOBAL such as os.system) is the chained exception, and a
        # paragraph of its own between torch's advice
        inner = str(err.__context__ or err.__cause__ or "").strip()
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        reason = inner or (paragraphs[1] if len(paragraphs) > 2 else "")
        return f"refused by the weights-only loader ({reason.splitlines()[0].rstrip('.')})" if reason else \
            "refused by the weights-only loader"
    if isinstance(err, (pickle.UnpicklingError, RuntimeError)):
        return text.splitlines()[0].split(". ")[0] if text else type(err).__name__
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return err.strerror or type(err).__name__
    if isinstance(err, OSError):  # torch's zip reader on an archive cut short
        return f"the file is cut short or corrupt ({type(err).__name__}: {text.splitlines()[0] if text else '?'})"
    # the unpickler tripped over bytes that are no pickle at all
    return f"not a file written by torch.save ({type(err).__name__}: {text.splitlines()[0] if text else '?'})"


class RunStopped(Exception):
    """Training stopped on request (SIGTERM, SIGUSR1, Ctrl-C) after saving a snapshot; `--resume` continues it.

    The CLI prints the one-line message and exits with `exit_code`, 75 (EX_TEMPFAIL, "try again"): not 0, so
    that `pia ... && next-step` does not go on with an unfinished model, and not 143/130, which mean that the
    process was killed without saving."""

    exit_code = 75
