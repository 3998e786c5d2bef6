"""Logging in Redis's line format: `pid:M 22 Nov 2026 13:45:36.123 * message`."""

import logging
import os
import sys
import time

_LEVELS = {"debug": logging.DEBUG, "verbose": 15, "notice": logging.INFO,
           "warning": logging.WARNING, "nothing": logging.CRITICAL + 10}
_MARKS = {logging.DEBUG: ".", 15: "-", logging.INFO: "*", logging.WARNING: "#",
          logging.ERROR: "#", logging.CRITICAL: "#"}
logging.addLevelName(15, "VERBOSE")


class RedisFormatter(logging.Formatter):
    def __init__(self, role_mark="M"):
        super().__init__()
        self.role_mark = role_mark

    def format(self, record):
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(record.created))
        text = "%d:%s %s.%03d %s %s" % (os.getpid(), self.role_mark, stamp, record.msecs,
                                        _MARKS.get(record.levelno, "*"), record.getMessage())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class ServerLog(logging.LoggerAdapter):
    def verbose(self, msg, *args):
        self.log(15, msg, *args)

    def process(self, msg, kwargs):
        return msg, kwargs


def setup(level: str, logfile: str = "", role_mark: str = "M") -> ServerLog:
    logger = logging.getLogger("respcache")
    logger.handlers.clear()
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stdout)
    handler.setFormatter(RedisFormatter(role_mark))
    logger.addHandler(handler)
    logger.setLevel(_LEVELS[level])
    logger.propagate = False
    return ServerLog(logger, {})


def set_level(log: ServerLog, level: str):
    log.logger.setLevel(_LEVELS[level])
