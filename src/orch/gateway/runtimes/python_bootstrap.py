"""Lambda-like Python execution environment for orch's local gateway (one worker process).

Started by ``orch.gateway.workers`` as ``python -B python_bootstrap.py <req-fd> <resp-fd>``
with the function's Lambda environment variables set (``LAMBDA_TASK_ROOT``, ``_HANDLER``,
``AWS_LAMBDA_FUNCTION_*`` ...), the working directory set to the code directory and
stdout/stderr connected to the log pipe that the gateway forwards as the function's logs.
Only the standard library is used, so any Python 3 can run it.

Wire protocol (all integers big-endian):

* gateway -> worker, on ``req-fd``: ``meta_len:u32 event_len:u32`` then ``meta`` (JSON:
  ``{"id", "deadline", "arn"}``, deadline in epoch milliseconds) and the raw event bytes.
* worker -> gateway, on ``resp-fd``: ``status:u8 max_rss_kb:u32 length:u32`` then the body.
  Status: 0 result, 1 handler error (error JSON), 2 init error (error JSON, the worker exits),
  3 out of memory (the worker exits), 4 ready (sent once after init, empty body).

The handler runs in this process like on Lambda: the code directory is first on
``sys.path``, the module is imported once (init), and the handler is called with the event
and a ``LambdaContext`` whose attributes mirror the AWS runtime interface client (including
``memory_limit_in_mb`` being the *string* from ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``).

Memory: ``RLIMIT_DATA`` is set to the interpreter's own data size at start-up plus the
function's memory size plus ``THREAD_ALLOWANCE_MB`` (thread stacks are 8 MB of address space
each and count against RLIMIT_DATA although they are hardly touched), so the handler and the
modules it imports cannot allocate much more than ``memory_size`` MB. A ``MemoryError`` is
reported like Lambda's out-of-memory kill and the worker exits. (The gateway also compares
the peak RSS reported in every answer with ``memory_size``, as Lambda does.)
"""

import decimal
import importlib
import json
import logging
import os
import resource
import struct
import sys
import sysconfig
import time
import traceback

STATUS_OK = 0
STATUS_ERROR = 1
STATUS_INIT_ERROR = 2
STATUS_OOM = 3
STATUS_READY = 4

_REQ_HEADER = struct.Struct("!II")
_RESP_HEADER = struct.Struct("!BII")
_THIS_FILE = os.path.basename(__file__)
THREAD_ALLOWANCE_MB = 64

_current_request_id = ""


class FaultException(Exception):
    """A runtime-level failure with a Lambda ``Runtime.*`` error type."""

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self):
        self.cognito_identity_id = None
        self.cognito_identity_pool_id = None

    def __repr__(self):
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class LambdaContext:
    """What Lambda's Python runtime passes as ``context``."""

    def __init__(self, request_id, deadline_ms, invoked_function_arn):
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None
        self.client_context = None
        self.identity = CognitoIdentity()
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


def _make_error(message, error_type, stack_trace, request_id):
    return {
        "errorMessage": _lambda_text(message or ""),
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


# Where files live on Lambda: stack frames and messages name these paths, never the ones of
# the machine running the gateway. Filled by _init_lambda_paths (longest prefix first).
_LAMBDA_PATHS = []


def _init_lambda_paths(task_root, dependency_dirs=()):
    """Map this machine's folders onto Lambda's: the code (and the folders its dependencies
    come from) to /var/task, the standard library to /var/lang/lib/python3.X (X from the
    function's runtime), installed packages to its site-packages, this bootstrap to
    /var/runtime."""
    runtime = os.environ.get("AWS_EXECUTION_ENV", "").rpartition("_")[2]
    if not runtime.startswith("python3."):
        runtime = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    lang = f"/var/lang/lib/{runtime}"
    pairs = [(task_root, "/var/task"), (os.path.dirname(os.path.abspath(__file__)), "/var/runtime")]
    pairs += [(folder, "/var/task") for folder in dependency_dirs]
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        if paths.get(key):
            pairs.append((paths[key], f"{lang}/site-packages"))
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            pairs.append((paths[key], lang))
    for entry in sys.path:
        if entry and os.path.isabs(entry) and entry.endswith(("site-packages", "dist-packages")):
            pairs.append((entry, f"{lang}/site-packages"))
    seen = set()
    for local, remote in sorted(pairs, key=lambda pair: -len(pair[0])):
        local = os.path.realpath(local).rstrip(os.sep)
        if local and local not in seen:
            seen.add(local)
            _LAMBDA_PATHS.append((local + os.sep, remote + "/"))


def _lambda_path(filename):
    """A frame's file as Lambda would name it; an unknown absolute path keeps only its name."""
    if not filename or not os.path.isabs(filename):
        return filename
    real = os.path.realpath(filename)
    for candidate in (filename, real):
        for local, remote in _LAMBDA_PATHS:
            if candidate.startswith(local):
                return remote + candidate[len(local) :]
    return "/var/runtime/" + os.path.basename(filename)


def _lambda_text(text):
    """Local folder names in a message replaced by Lambda's."""
    for local, remote in _LAMBDA_PATHS:
        text = text.replace(local, remote)
    return text


def _user_frames(tb):
    frames = [(_lambda_path(f.filename), f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if not frame[0].endswith(_THIS_FILE):
            return frames[i:]
    return frames


def _log_error(error):
    # Lambda's text log format: one record, continuation lines separated by "\r".
    lines = ["[ERROR] " + error["errorType"] + (": " + error["errorMessage"])]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend(element.splitlines())
    sys.stdout.write("\r".join(lines) + "\n")


class _Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, decimal.Decimal):
            return float(o) if not o.is_nan() else float("nan")
        return super().default(o)


def _marshal(response, encoder):
    if isinstance(response, bytes):
        return response
    try:
        return encoder.encode(response).encode("utf-8")
    except MemoryError:
        raise
    except Exception as e:
        raise FaultException(
            "Runtime.MarshalError", f"Unable to marshal response: {e}", None
        ) from None


def _load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            "Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}"
        ) from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                "Runtime.BuiltInModuleConflict",
                f"Cannot use built-in module {modname} as a handler module",
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{_lambda_path(e.filename)}" Line {e.lineno}\n    {e.text}']
        raise FaultException(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id
        return True


def _setup_logging():
    logging.Formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _limit_memory():
    size_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if not size_mb.isdigit():
        return
    base_kb = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    base_kb = int(line.split()[1])
                    break
    except OSError:
        return
    limit = (base_kb + (int(size_mb) + THREAD_ALLOWANCE_MB) * 1024) * 1024
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (OSError, ValueError):
        pass


try:
    _STATUS_FD = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
except OSError:
    _STATUS_FD = -1


def _max_rss_kb():
    # VmHWM, not getrusage's ru_maxrss: after fork/vfork + exec, ru_maxrss still includes
    # the gateway's own peak RSS.
    if _STATUS_FD >= 0:
        try:
            data = os.pread(_STATUS_FD, 4096, 0)
            start = data.find(b"VmHWM:")
            if start >= 0:
                return min(int(data[start + 6 : data.index(b"kB", start)]), 0xFFFFFFFF)
        except (OSError, ValueError):
            pass
    return min(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0xFFFFFFFF)


def main():
    global _current_request_id
    req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    sys.path[0] = task_root
    # Hot reload: task_root is the function's source folder and these folders (the deployed
    # package) hold the dependencies orch vendored into it; the source folder wins.
    dependency_dirs = [d for d in os.environ.pop("ORCH_DEPENDENCY_PATH", "").split(os.pathsep) if d]
    sys.path[1:1] = dependency_dirs
    _init_lambda_paths(task_root, dependency_dirs)
    sys.argv = [sys.argv[0]]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass

    read, write, flush_out = os.read, os.write, sys.stdout.flush
    flush_err = sys.stderr.flush
    header_size = _REQ_HEADER.size

    def send(status, body=b""):
        flush_out()
        flush_err()
        data = _RESP_HEADER.pack(status, _max_rss_kb(), len(body)) + body
        view = memoryview(data)
        while view:
            view = view[write(resp_fd, view) :]

    def read_exact(n):
        chunks = []
        while n:
            chunk = read(req_fd, n)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    _limit_memory()
    _setup_logging()
    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
    except FaultException as e:
        error = _make_error(e.msg, e.exception_type, e.trace, "")
        _log_error(error)
        send(STATUS_INIT_ERROR, json.dumps(error).encode())
        return 0
    except MemoryError:
        send(STATUS_OOM)
        return 1
    except Exception:
        etype, value, tb = sys.exc_info()
        error = _make_error(str(value), etype.__name__, traceback.format_list(_user_frames(tb)), "")
        _log_error(error)
        send(STATUS_INIT_ERROR, json.dumps(error).encode())
        return 0

    ascii_only = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12"
    encoder = _Encoder(ensure_ascii=ascii_only)
    loads = json.loads
    send(STATUS_READY)

    while True:
        try:
            header = read_exact(header_size)
        except (EOFError, OSError):
            return 0
        meta_len, event_len = _REQ_HEADER.unpack(header)
        meta = loads(read_exact(meta_len))
        event_bytes = read_exact(event_len) if event_len else b""
        request_id = meta["id"]
        _current_request_id = request_id
        try:
            try:
                event = loads(event_bytes)
            except ValueError as e:
                raise FaultException(
                    "Runtime.UnmarshalError", f"Unable to unmarshal input: {e}"
                ) from None
            context = LambdaContext(request_id, meta["deadline"], meta["arn"])
            body = _marshal(handler(event, context), encoder)
            status = STATUS_OK
        except MemoryError:
            body, status = b"", STATUS_OOM
        except FaultException as e:
            error = _make_error(e.msg, e.exception_type, e.trace, request_id)
            _log_error(error)
            body, status = json.dumps(error).encode(), STATUS_ERROR
        except Exception:
            etype, value, tb = sys.exc_info()
            error = _make_error(
                str(value), etype.__name__, traceback.format_list(_user_frames(tb)), request_id
            )
            del tb
            _log_error(error)
            body, status = json.dumps(error).encode(), STATUS_ERROR
        send(status, body)
        if status == STATUS_OOM:
            return 1


if __name__ == "__main__":
    sys.exit(main())
