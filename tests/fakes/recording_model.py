"""The scripted model, keeping the messages of every call (whole or streamed): what an LLM would have read."""

from __future__ import annotations

from agent.models import ScriptedModel


class RecordingModel(ScriptedModel):
    """A ScriptedModel whose `inputs` holds the messages of each call, in order."""

    def __init__(self, steps: list[dict]):
        super().__init__(steps)
        self.inputs: list[list] = []

    def generate(self, messages, *args, **kwargs):
        self.inputs.append(list(messages))
        return super().generate(messages, *args, **kwargs)

    def generate_stream(self, messages, *args, **kwargs):
        self.inputs.append(list(messages))
        yield from super().generate_stream(messages, *args, **kwargs)
