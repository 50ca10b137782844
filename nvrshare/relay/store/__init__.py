"""The relay's persistent store: schema, migrations, engine and error boundary."""

from nvrshare.relay.store.engine import Store
from nvrshare.relay.store.migrations import MIGRATIONS, SchemaTooNew

__all__ = ["MIGRATIONS", "SchemaTooNew", "Store"]
