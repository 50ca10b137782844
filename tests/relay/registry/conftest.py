from __future__ import annotations

import pytest

from nvrshare.relay.broker.mosquitto_conf import find_dynsec_plugin
from nvrshare.relay.broker.process import find_mosquitto

if find_mosquitto() is None or find_dynsec_plugin() is None:
    pytest.skip("mosquitto with the dynamic-security plugin is required", allow_module_level=True)
