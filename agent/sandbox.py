"""The code-action sandbox: a smolagents executor that runs each code action in a confined child process.

smolagents' LocalPythonExecutor is an import allow-list, not a boundary: generator frames, `str.format`
attribute walks and private members of allowed modules lead from the LLM's code to whatever its process
holds. So `SandboxExecutor` keeps that interpreter and allow-list as a first line but runs them in
agent/sandbox_child.py, started through tools/confine.py (no token in its environment, scratch HOME, the
session's workspace as working directory, resource limits, no network and no files outside where the
kernel allows). Tools, tokens, the ledger and the approval switch stay here, in the parent: a code action
calls a tool by sending its name and JSON-able arguments; `SandboxExecutor` runs the real tool and sends
back its result or its error.

The child keeps its state between actions. When it crashes, hits a resource limit or runs past
`timeout_s` (time spent in tools not counted), it is restarted and the action fails with an observation
that says what happened and that the state is lost.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from multiprocessing import Pipe
from pathlib import Path

from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor
from smolagents.serialization import SerializationError

from agent.sandbox_child import decode, encode, plain
from tools.confine import Confined, Limits, start

CHILD = Path(__file__).with_name("sandbox_child.py").resolve()
MAX_MESSAGE_BYTES = 32 << 20
START_TIMEOUT_S = 60.0  # for the child to import smolagents and say it is ready
STATE_LOST = ("The sandbox process was restarted: variables and functions defined by earlier code actions are "
              "lost (tools and the task's variables are there again); define again what you need.")
log = logging.getLogger(__name__)


class ChildLost(Exception):
    """The child died, stopped answering or broke the protocol; the message says what happened."""


class SandboxExecutor(PythonExecutor):
    """Runs code actions in a confined child process; tools run here when the child calls them.

    `network_isolated` and `filesystem_restricted` say what confinement held for the current child
    (tools/confine.py). `state["_print_outputs"]` holds a failed action's printed output, where
    smolagents' CodeAgent looks for it.
    """

    def __init__(self, authorized_imports: list[str], workspace: Path, limits: Limits = Limits(),
                 timeout_s: float = 120.0):
        self.authorized_imports = list(authorized_imports)
        self.workspace = Path(workspace)
        self.limits = limits
        self.timeout_s = timeout_s
        self.state: dict = {"_print_outputs": ""}
        self._tools: dict = {}
        self._variables: dict = {}
        self._child: Confined | None = None
        self._conn = None
        self._stderr = None
        self._stop = None
        self._ready = False

    @property
    def network_isolated(self) -> bool:
        return self._ensure_child().network_isolated

    @property
    def filesystem_restricted(self) -> bool:
        return self._ensure_child().filesystem_restricted

    def send_tools(self, tools: dict) -> None:
        self._tools = dict(tools)
        self._send({"op": "tools", "names": sorted(self._tools)})

    def send_variables(self, variables: dict) -> None:
        self._variables.update(variables)
        self._send({"op": "variables", "values": {name: plain(value) for name, value in variables.items()}})

    def __call__(self, code_action: str) -> CodeOutput:
        self.state["_print_outputs"] = ""
        try:
            self._send({"op": "run", "code": code_action})
            reply = self._serve_tool_calls()
        except ChildLost as lost:
            self._restart()
            raise InterpreterError(f"{lost} {STATE_LOST}") from None
        except BaseException:  # e.g. interrupted inside a tool: the child waits for a reply that will not come
            self._restart()
            raise
        if reply["op"] == "failed":
            self.state["_print_outputs"] = reply.get("logs", "")
            raise InterpreterError(reply.get("error", "the code action failed"))
        return CodeOutput(output=reply.get("output"), logs=reply.get("logs", ""),
                          is_final_answer=bool(reply.get("is_final_answer")))

    def cleanup(self) -> None:
        """End the child process (a later action starts a fresh one)."""
        if self._stop is not None:
            self._stop()
        self._child = self._conn = self._stop = None
        self._ready = False

    def _ensure_child(self) -> Confined:
        if self._child is None:
            parent_end, child_end = Pipe()
            self._stderr = tempfile.TemporaryFile()
            argv = [sys.executable, "-I", str(CHILD), str(child_end.fileno()), ",".join(self.authorized_imports)]
            child = start(argv, self.workspace, self.limits, readable=(str(CHILD),), pass_fds=(child_end.fileno(),),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
            child_end.close()
            if not (child.network_isolated and child.filesystem_restricted):
                log.warning("sandbox: network namespace %s, Landlock %s on this machine",
                            "held" if child.network_isolated else "refused",
                            "held" if child.filesystem_restricted else "unavailable")
            self._child, self._conn = child, parent_end
            self._stop = weakref.finalize(self, _stop_child, child, parent_end, self._stderr)
            self._send({"op": "tools", "names": sorted(self._tools)})
            self._send({"op": "variables", "values": {k: plain(v) for k, v in self._variables.items()}})
        return self._child

    def _restart(self) -> None:
        self.cleanup()
        self._ensure_child()  # starts importing now, while the model writes its next step

    def _send(self, message: dict) -> None:
        self._ensure_child()
        try:
            self._conn.send_bytes(encode(message))
        except OSError:
            pass  # the child is gone; the next reply read says how

    def _serve_tool_calls(self) -> dict:
        """Answer the child's tool calls until it reports the action done or failed."""
        budget = self.timeout_s if self._ready else START_TIMEOUT_S
        while True:
            waited = time.monotonic()
            if not self._conn.poll(budget):
                raise ChildLost(f"The code action ran past {self.timeout_s:.0f}s (time spent in tools not counted) "
                                "and was stopped." if self._ready else
                                f"The sandbox process did not start within {START_TIMEOUT_S:.0f}s.")
            budget -= time.monotonic() - waited
            try:
                frame = self._conn.recv_bytes(MAX_MESSAGE_BYTES)
            except EOFError:
                raise ChildLost(self._death()) from None
            except OSError:  # over the size limit, or the connection broke
                raise ChildLost(f"The sandbox process sent a message over {MAX_MESSAGE_BYTES >> 20} MB or broke "
                                "its connection.") from None
            try:
                message = decode(frame)
            except (SerializationError, ValueError, KeyError, TypeError, OSError):
                raise ChildLost("The sandbox process sent a message that could not be read.") from None
            if message.get("op") == "ready" and not self._ready:
                self._ready, budget = True, self.timeout_s
            elif message.get("op") == "tool":
                reply = encode(self._call_tool(message))
                try:
                    self._conn.send_bytes(reply)
                except OSError:
                    raise ChildLost(self._death()) from None
            elif message.get("op") in ("done", "failed"):
                return message
            else:
                raise ChildLost(f"The sandbox process sent an unknown message {message.get('op')!r}.")

    def _call_tool(self, message: dict) -> dict:
        """Run the tool the child asked for; its result, or its error as the code action will see it."""
        name, args, kwargs = message.get("name"), message.get("args", []), message.get("kwargs", {})
        if not (isinstance(name, str) and name in self._tools and isinstance(args, list) and isinstance(kwargs, dict)):
            return {"op": "tool_error", "types": ["InterpreterError", "ValueError"],
                    "message": f"there is no tool named {name!r} (or its arguments are not a list and a dict)"}
        try:
            value = self._tools[name](*args, **kwargs)
        except Exception as exc:
            return {"op": "tool_error", "types": [cls.__name__ for cls in type(exc).__mro__], "message": str(exc)}
        return {"op": "tool_result", "value": plain(value)}

    def _death(self) -> str:
        """What ended the child, for the observation."""
        process = self._child.process
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "The sandbox process closed its connection and was stopped."
        if code == -signal.SIGXCPU:
            return f"The sandbox process used up its {self.limits.cpu_s}s of CPU time and was stopped."
        if code < 0:
            return f"The sandbox process was killed ({signal.strsignal(-code) or f'signal {-code}'})."
        self._stderr.seek(0)
        last = (self._stderr.read()[-2000:].decode(errors="replace").strip().splitlines() or [""])[-1]
        return f"The sandbox process exited with code {code}" + (f" ({last})." if last else ".")


def _stop_child(child: Confined, conn, stderr) -> None:
    conn.close()
    child.kill()
    stderr.close()
