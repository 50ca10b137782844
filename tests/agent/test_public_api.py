import nvrshare.agent
import nvrshare.relay.broker
import nvrshare.relay.registry


def test_public_names_are_pinned() -> None:
    assert sorted(nvrshare.agent.__all__) == [
        "Agent", "AgentConfig", "AgentError", "Backoff", "BackoffPolicy", "BootstrapError",
        "BrokerEndpoint", "ConfigError", "ControlChannel", "DownlinkHandler", "GrantRejected",
        "GrantRejection", "GrantStore", "IdentityError", "RefusingDownlink", "Uplink",
        "config_from_mapping", "load_config", "load_or_create_identity",
    ]  # fmt: skip
    assert sorted(nvrshare.relay.broker.__all__) == [
        "BrokerCredential", "BrokerError", "BrokerPortTaken", "BrokerProcessError",
        "BrokerProvisioner",
        "BrokerSettings", "BrokerUnavailable", "DynsecConfig", "DynsecProvisioner",
        "MosquittoProcess", "ProvisioningError", "ProvisioningRefused", "RelayBroker",
        "TopicAcl", "generate_password", "open_broker", "parse_broker_url", "relay_acl",
        "uses_tls",
    ]  # fmt: skip
    assert sorted(nvrshare.relay.registry.__all__) == [
        "ClaimRefused", "DevicePlane", "DevicePlaneSettings", "GrantPublisher", "Manifest",
        "ManifestEntry", "ProvisioningConfig", "ProvisioningService", "Registry",
        "RegistryConfig", "RunningDevicePlane", "UplinkHandler", "build_grant_set",
        "provisioning_routes", "settings_from_mapping",
    ]  # fmt: skip
    for module in (nvrshare.agent, nvrshare.relay.broker, nvrshare.relay.registry):
        for name in module.__all__:
            assert hasattr(module, name), name
