"""The sandbox process: runs the agent's code actions with smolagents' LocalPythonExecutor and reaches the
tools, which stay in the parent, over one socket.

    python -I agent/sandbox_child.py FD AUTHORIZED_IMPORTS      # started by agent/sandbox.py, confined

It imports only the standard library and smolagents (nothing of ours) and holds no token, ledger or
approval switch: tools here are stubs that send `{"op": "tool", "name", "args", "kwargs"}` and block for
`{"op": "tool_result", "value"}` or `{"op": "tool_error", "types", "message"}` (`types`: the names of the
exception's class and its bases). Other messages:

    parent -> child   {"op": "tools", "names"}  {"op": "variables", "values"}  {"op": "run", "code"}
    child -> parent   {"op": "ready"} once started, then for each run
                      {"op": "done", "output", "logs", "is_final_answer"} or {"op": "failed", "error", "logs"}

Each message is one frame of a multiprocessing Connection holding smolagents' SafeSerializer text
(JSON with markers for tuples, sets, bytes, dates; never pickle).
"""

from __future__ import annotations

import builtins
import json
import sys
from multiprocessing.connection import Connection

from smolagents.local_python_executor import LocalPythonExecutor
from smolagents.serialization import SafeSerializer, SerializationError


def encode(message: dict) -> bytes:
    return SafeSerializer.dumps(message).encode()


def decode(frame: bytes) -> dict:
    message = SafeSerializer.loads(frame.decode())
    if not isinstance(message, dict):
        raise SerializationError(f"a message is a JSON object, not {type(message).__name__}")
    return message


def plain(value):
    """`value` when SafeSerializer can carry it; else its JSON form with other objects as their str; else its str."""
    try:
        SafeSerializer.to_json_safe(value)
        return value
    except (SerializationError, RecursionError):
        try:
            return json.loads(json.dumps(value, default=str))
        except (TypeError, ValueError, RecursionError):
            return str(value)


def rebuilt_exception(names: list[str], message: str) -> Exception:
    """An exception like the one a tool raised in the parent, from the names of its class and bases: named
    the same, so that the observation reads the same (`... due to: ToolError: ...`), and a subclass of the
    nearest built-in one, so that `except ValueError:` still catches a ToolError."""
    base = next((cls for cls in (getattr(builtins, name, None) for name in names)
                 if isinstance(cls, type) and issubclass(cls, Exception)), Exception)
    cls = base if base.__name__ == names[0] else type(names[0], (base,), {})
    try:
        return cls(message)
    except TypeError:  # e.g. UnicodeDecodeError takes five arguments
        return type(names[0], (Exception,), {})(message)


def tool_stub(conn: Connection, name: str):
    """What code actions call as tool `name`: the call goes to the parent, its result or error comes back."""
    def call(*args, **kwargs):
        try:
            request = encode({"op": "tool", "name": name, "args": list(args), "kwargs": kwargs})
        except (SerializationError, RecursionError) as exc:
            raise TypeError(f"{name}() takes plain data (str, numbers, bools, None, lists, dicts): {exc}") from None
        conn.send_bytes(request)
        reply = decode(conn.recv_bytes())
        if reply["op"] == "tool_error":
            raise rebuilt_exception(reply["types"], reply["message"])
        return reply["value"]
    call.__name__ = call.__qualname__ = name
    return call


def run(executor: LocalPythonExecutor, code: str) -> dict:
    try:
        result = executor(code)
    except Exception as exc:  # the interpreter's InterpreterError, with the line and the cause
        return {"op": "failed", "error": str(exc), "logs": str(executor.state.get("_print_outputs", ""))}
    return {"op": "done", "output": plain(result.output), "logs": result.logs,
            "is_final_answer": result.is_final_answer}


def main(fd: int, authorized_imports: list[str]) -> None:
    conn = Connection(fd)
    # The parent bounds each action's wall clock (and restarts this process); no timer thread here.
    executor = LocalPythonExecutor(authorized_imports, timeout_seconds=None)
    executor.send_tools({})
    conn.send_bytes(encode({"op": "ready"}))
    while True:
        try:
            message = decode(conn.recv_bytes())
        except EOFError:  # the parent closed the socket or exited
            return
        if message["op"] == "tools":
            executor.send_tools({name: tool_stub(conn, name) for name in message["names"]})
        elif message["op"] == "variables":
            executor.send_variables(message["values"])
        elif message["op"] == "run":
            conn.send_bytes(encode(run(executor, message["code"])))


if __name__ == "__main__":
    main(int(sys.argv[1]), [name for name in sys.argv[2].split(",") if name])
