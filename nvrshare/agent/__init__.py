"""The device agent: runs on (or next to) a recorder and only ever dials out.

`async with Agent(load_config(path)) as agent:` loads the device key and the
persisted grants, obtains the broker credential (bootstrap), opens the
recorder through `firmware_shim`, and keeps the MQTT control channel to the
relay alive.  Session handling plugs in through `DownlinkHandler`.
"""

from nvrshare.agent.app import Agent
from nvrshare.agent.backoff import Backoff, BackoffPolicy
from nvrshare.agent.config import AgentConfig, BrokerEndpoint, config_from_mapping, load_config
from nvrshare.agent.control import ControlChannel, DownlinkHandler, RefusingDownlink, Uplink
from nvrshare.agent.errors import (
    AgentError,
    BootstrapError,
    ConfigError,
    GrantRejected,
    GrantRejection,
    IdentityError,
)
from nvrshare.agent.grants import GrantStore
from nvrshare.agent.identity import load_or_create_identity

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "Backoff",
    "BackoffPolicy",
    "BootstrapError",
    "BrokerEndpoint",
    "ConfigError",
    "ControlChannel",
    "DownlinkHandler",
    "GrantRejected",
    "GrantRejection",
    "GrantStore",
    "IdentityError",
    "RefusingDownlink",
    "Uplink",
    "config_from_mapping",
    "load_config",
    "load_or_create_identity",
]
