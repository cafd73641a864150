"""rsr.Error, what every failing call raises, and the runtime's status codes (rsr.h's rsr_status)."""

_STATUS = {0: "ok", 1: "invalid argument", 2: "out of memory", 3: "ABI mismatch", 4: "context full",
           5: "bad token", 6: "internal error", 7: "not found", 8: "format", 9: "buffer too small",
           10: "device", 11: "input/output"}
_ERR_INVALID, _ERR_ABI, _ERR_FORMAT = 1, 3, 8  # rsr_status


class Error(Exception):
    """A runtime call failed: .status is the rsr_status, str(e) the runtime's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.status_name = _STATUS.get(status, str(status))


Error.__module__ = "rsr"  # rsr.Error, as tracebacks and repr name it
