"""Every error text the server sends, worded as Redis words it.

Clients map the first word of an error (ERR, WRONGTYPE, NOAUTH, ...) to exception classes, so the
texts here follow Redis 7.0 to the letter. Nothing else in respcache spells an error reply.
"""


class CommandError(Exception):
    """Raised by a command handler; str(self) is the error line without the leading '-'."""


class ProtocolError(Exception):
    """Malformed request bytes: the reply is sent and that connection is closed."""


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
INCR_FLOAT_NAN = "ERR increment would produce NaN or Infinity"
HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
NO_SUCH_KEY = "ERR no such key"
NO_PERSISTENCE = ("ERR respcache keeps no data on disk: its objects live in shared memory and in "
                  "the tiers below (SAVE/BGSAVE have nothing to write)")
DB_OUT_OF_RANGE = "ERR DB index is out of range"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?")
NOPERM_COMMAND = "NOPERM this user has no permissions to run the '{}' command"
NOPERM_KEY = "NOPERM this user has no permissions to access one of the keys used as arguments"
NOPERM_CHANNEL = ("NOPERM this user has no permissions to access one of the channels used as "
                  "arguments")
MAX_CLIENTS = "ERR max number of clients reached"
# ACL
ACL_SETUSER_RULE = "ERR Error in ACL SETUSER modifier '{}': {}"
ACL_BAD_USERNAME = "ERR Usernames can't contain spaces or null characters"
ACL_DELETE_DEFAULT = "ERR The 'default' user cannot be removed"
ACL_UNKNOWN_CATEGORY = "ERR Unknown category '{}'"
SUBCOMMAND_SYNTAX = "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP."
# Why a rule was refused, as Redis's ACLSetUserStringError words it (keyed by acl.RuleError.kind).
ACL_RULE_REASONS = {
    "unknown": "Unknown command or category name in ACL",
    "syntax": "Syntax error",
    "keys-after-all": ("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid "
                       "and does not have any effect. Try 'resetkeys' to start with an empty list "
                       "of patterns"),
    "channels-after-all": ("Adding a pattern after the * pattern (or the 'allchannels' flag) is "
                           "not valid and does not have any effect. Try 'resetchannels' to start "
                           "with an empty list of channels"),
    "no-such-password": "The password you are trying to remove from the user does not exist",
    "bad-hash": ("The password hash must be exactly 64 characters and contain only lowercase "
                 "hexadecimal characters"),
}
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_OUT_OF_RANGE = "ERR offset is out of range"
NOT_A_NUMBER_TIMEOUT = "ERR timeout is not an integer or out of range"
NESTED_MULTI = "ERR MULTI calls can not be nested"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
EXECABORT_BECAUSE = "EXECABORT Transaction discarded because of: {}"  # an EXEC refused up front
NOT_IN_TRANSACTION = "ERR Command not allowed inside a transaction"
MONITOR_IN_EXEC = "ERR MONITOR isn't allowed for DENY BLOCKING client"
PUBSUB_CONTEXT = ("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
                  "RESET are allowed in this context")
NOPROTO = "NOPROTO unsupported protocol version"
OOM = "OOM command not allowed when used memory > 'maxmemory'."
VALUE_TOO_BIG = "ERR value too large for the cache: {} bytes, the table holds at most {} bytes"
CONFIG_UNKNOWN_PARAM = "ERR Unknown option or number of arguments for CONFIG SET - '{}'"
CONFIG_SET_FAILED = "ERR CONFIG SET failed (possibly related to argument '{}') - {}"
CONFIG_REWRITE_NO_FILE = "ERR The server is running without a config file"
NO_SUCH_CLIENT = "ERR No such client"
CLIENT_NAME_SPACES = "ERR Client names cannot contain spaces, newlines or special characters."
PROTECTED_MODE = (
    "-DENIED Redis is running in protected mode because protected mode is enabled and no password "
    "is set for the default user. In this mode connections are only accepted from the loopback "
    "interface. If you want to connect from external computers to Redis you may adopt one of the "
    "following solutions: 1) Just disable protected mode sending the command 'CONFIG SET "
    "protected-mode no' from the loopback interface by connecting to Redis from the same host "
    "the server is running, however MAKE SURE Redis is not publicly accessible from internet if "
    "you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just "
    "disable the protected mode by editing the Redis configuration file, and setting the "
    "protected mode option to 'no', and then restarting the server. 3) If you started the server "
    "manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an "
    "authentication password for the default user. NOTE: You only need to do one of the above "
    "things in order for the server to start accepting connections from the outside.\r\n")

# Expiry
INVALID_EXPIRE = "ERR invalid expire time in '{}' command"
EXPIRE_OPTIONS_NX_XX_GT_LT = "ERR NX and XX, GT or LT options at the same time are not compatible"
EXPIRE_OPTIONS_GT_LT = "ERR GT and LT options at the same time are not compatible"
UNSUPPORTED_OPTION = "ERR Unsupported option {}"

# Keyspace and hash commands
INVALID_CURSOR = "ERR invalid cursor"
VALUE_NAN_OR_INF = "ERR value is NaN or Infinity"
VALUE_OUT_OF_RANGE = "ERR value is out of range"
VALUE_OUT_OF_RANGE_BETWEEN = "ERR value is out of range, value must between {} and {}"

# Protocol errors (the connection is closed after the reply)
PROTO_MULTIBULK = "Protocol error: invalid multibulk length"
PROTO_BULK = "Protocol error: invalid bulk length"
PROTO_EXPECTED_DOLLAR = "Protocol error: expected '$', got '{}'"
PROTO_INLINE_TOO_BIG = "Protocol error: too big inline request"
PROTO_UNBALANCED = "Protocol error: unbalanced quotes in request"
PROTO_MBULK_TOO_BIG = "Protocol error: too big mbulk count string"
PROTO_BULK_TOO_BIG = "Protocol error: too big bulk count string"
# While authentication is required: more than 10 arguments, or one longer than 16384 bytes
PROTO_UNAUTH_MULTIBULK = "Protocol error: unauthenticated multibulk length"
PROTO_UNAUTH_BULK = "Protocol error: unauthenticated bulk length"


def unknown_command(name: bytes, args) -> str:
    """Redis 7: the name and the first arguments, each quoted, capped at 128 characters."""
    tail = ""
    for arg in args:
        if len(tail) >= 128:
            break
        tail += "'" + _printable(arg)[: 128 - len(tail)] + "' "
    return "ERR unknown command '{}', with args beginning with: {}".format(
        _printable(name)[:128], tail)


def unknown_subcommand(sub: bytes, command: str) -> str:
    return "ERR unknown subcommand '{}'. Try {} HELP.".format(_printable(sub)[:128], command.upper())


def wrong_arity(fullname: str) -> str:
    return "ERR wrong number of arguments for '{}' command".format(fullname)


def unsupported_option(option: bytes) -> str:
    """EXPIRE's unknown option; Redis prints it with %s, so it ends at the first NUL byte."""
    return UNSUPPORTED_OPTION.format(_printable(option.split(b"\0", 1)[0]))


def _printable(raw: bytes) -> str:
    # Error lines must not carry CR/LF (they would split the reply); Redis replaces them with spaces.
    return raw.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")


# CLIENT KILL ID / USER, CLIENT LIST ID, SLOWLOG GET count, as Redis 7.0 words them
CLIENT_ID_NOT_POSITIVE = "ERR client-id should be greater than 0"
NO_SUCH_USER_TO_KILL = "ERR No such user '{}'"
INVALID_CLIENT_ID = "ERR Invalid client ID"
SLOWLOG_COUNT = "ERR count should be greater than or equal to -1"

# EXEC checks ACLs again (the rules may have changed while the transaction was queued)
EXEC_ACL_CHANGED = ("NOPERM ACLs rules changed between the moment the transaction was "
                    "accumulated and the EXEC call. This command is no longer allowed for the "
                    "following reason: {}")
EXEC_ACL_REASONS = {"command": "no permission to execute the command or subcommand",
                    "key": "no permission to touch the specified keys",
                    "channel": "no permission to access one of the channels used as arguments"}
