"""Carrying out an admitted `PtzCommand` on the recorder through the firmware shim.

PTZ travels over MQTT (`down/ptz` → `up/session` `PtzResult`), not over a
data-plane session: a command is a few bytes, needs no tunnel, and carries
the share token itself, so the agent checks the PTZ permission per command
(`Authorizer.admit_command`) before this runs.
"""

from __future__ import annotations

from nvrshare.firmware_shim.interface import Recorder
from nvrshare.firmware_shim.models import PtzVector
from nvrshare.protocol.messages import PtzAction, PtzCommand

__all__ = ["execute_ptz"]


async def execute_ptz(recorder: Recorder, command: PtzCommand) -> None:
    """Run `command`; raises the shim's errors (`NotSupported`, `NotFound`, ...)."""
    channel = command.channel
    if command.action is PtzAction.CONTINUOUS_MOVE:
        velocity = PtzVector(pan=command.pan, tilt=command.tilt, zoom=command.zoom)
        await recorder.ptz_move(channel, velocity)
    elif command.action is PtzAction.STOP:
        await recorder.ptz_stop(channel)
    elif command.action is PtzAction.GOTO_PRESET:
        assert command.preset is not None  # the message validates it
        await recorder.ptz_goto_preset(channel, command.preset)
    else:
        assert command.preset is not None
        await recorder.ptz_set_preset(channel, command.preset)
