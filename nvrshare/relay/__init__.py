"""The relay: the cloud side of nvrshare.

- `config`: `RelayConfig` (TOML), `errors`: the `RelayError` tree.
- `store`: SQLAlchemy (SQLite embedded default, PostgreSQL in production),
  versioned migrations run at start-up, the "network busy" error boundary.
- `services`: every business rule (accounts, devices, shares, tokens, audit,
  events); the API, the portal, the CLI and the device registry all call it.
- `api`: the JSON HTTP API (aiohttp) and its OpenAPI document.
- `app`: `Relay`, the process lifecycle; `cli`: `nvrshare relay`.
- `broker`, `registry`, `dataplane`, `portal`: MQTT broker, device registry,
  session data plane and web portal, plugged into `Relay`.
"""
