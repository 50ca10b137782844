"""Per-device broker isolation: accounts, ACLs, and the relay's (embedded) mosquitto."""

from nvrshare.relay.broker.credentials import BrokerCredential, TopicAcl, generate_password
from nvrshare.relay.broker.dynsec import DynsecConfig, DynsecProvisioner
from nvrshare.relay.broker.embedded import (
    BrokerSettings,
    RelayBroker,
    open_broker,
    parse_broker_url,
    relay_acl,
    uses_tls,
)
from nvrshare.relay.broker.errors import (
    BrokerError,
    BrokerPortTaken,
    BrokerProcessError,
    BrokerUnavailable,
    ProvisioningError,
    ProvisioningRefused,
)
from nvrshare.relay.broker.process import MosquittoProcess
from nvrshare.relay.broker.provisioning import BrokerProvisioner

__all__ = [
    "BrokerCredential",
    "BrokerError",
    "BrokerPortTaken",
    "BrokerProcessError",
    "BrokerProvisioner",
    "BrokerSettings",
    "BrokerUnavailable",
    "DynsecConfig",
    "DynsecProvisioner",
    "MosquittoProcess",
    "ProvisioningError",
    "ProvisioningRefused",
    "RelayBroker",
    "TopicAcl",
    "generate_password",
    "open_broker",
    "parse_broker_url",
    "relay_acl",
    "uses_tls",
]
