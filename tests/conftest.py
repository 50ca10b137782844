"""Suite-wide settings. Package-specific fixtures live in tests/<package>/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from hypothesis import HealthCheck, settings

# Shared, noisy 2-core machines: no per-example deadline, bounded example counts.
settings.register_profile(
    "default",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


# -- no blocking calls on the event loop -------------------------------------------------
# Like aiohttp's suite: blockbuster fails a test when code of ours makes a blocking call
# (file or socket I/O, sleep, ...) on a running event loop.  The allowances below are
# one-off start-up work (data dir, config, key and broker files, read or written once
# before anything is served) and test set-up that calls our synchronous APIs from an
# async test; each names the function that may block, nothing wider.
STARTUP_MAY_BLOCK = {
    "nvrshare/relay/config.py": ("load_config",),
    "nvrshare/relay/assembly/settings.py": ("load_settings",),
    "nvrshare/relay/assembly/stack.py": ("_status_file", "read_status"),  # read by CLIs
    "nvrshare/relay/store/engine.py": ("__init__", "__aenter__"),
    "nvrshare/relay/services/keystore.py": ("__init__", "rotate", "retire"),
    "nvrshare/relay/broker/embedded.py": ("open_broker",),
    "nvrshare/relay/broker/process.py": ("find_mosquitto", "_spawn"),
    "nvrshare/relay/portal/app.py": ("create_portal",),
    "nvrshare/relay/portal/rendering.py": ("build_environment",),
    "nvrshare/agent/config.py": ("load_config", "config_from_mapping"),
    "nvrshare/agent/app.py": ("__aenter__",),
    "nvrshare/agent/grants.py": ("load",),
    "nvrshare/cli.py": ("build_parser",),
    # The CLI's one-shot session file; the demo writing its configs, reading its logs.
    "nvrshare/client/session_file.py": ("save_session", "load_session", "delete_session"),
    "nvrshare/demo.py": ("start_relay", "start_recorder", "start_agent"),
    "nvrshare/demo_processes.py": ("start", "log_tail"),
    # asyncpg reads ~/.pgpass and looks for client certificates on every new connection
    # (a pool fills once).
    "asyncpg/connect_utils.py": ("_parse_connect_dsn_and_args",),
}
TEST_SETUP_MAY_BLOCK = {
    "tests/support/mosquitto.py": ("__init__", "__aenter__"),
    "tests/agent/sessions/harness.py": ("publish_grants",),
}


@pytest.fixture(autouse=True)
def _no_blocking_calls_on_the_loop() -> Iterator[BlockBuster]:
    with blockbuster_ctx("nvrshare") as buster:
        for allowances in (STARTUP_MAY_BLOCK, TEST_SETUP_MAY_BLOCK):
            for path, functions in allowances.items():
                for function in buster.functions.values():
                    function.can_block_in(path, set(functions))
        yield buster
