"""Worker processes over one shm table (issue 4 builds this out); one worker runs in-process."""

import os


def worker_count(config) -> int:
    workers = config.values["workers"]
    return os.cpu_count() or 1 if workers == "auto" else int(workers)


def run_workers(config, log) -> int:
    log.warning("workers %s: multi-process serving is not built yet; running one worker",
                config.values["workers"])
    from .cli import run_single
    return run_single(config, log)
