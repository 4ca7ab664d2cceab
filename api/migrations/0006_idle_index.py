from tortoise import migrations
from tortoise.migrations import operations as ops

# Idle accounts (api/services/reclaim.py) are found by COALESCE(last_login, mapi_ews_enabled_at)
# among a domain's enabled accounts: this expression index serves exactly that (on PostgreSQL and
# SQLite alike), so listing or reclaiming them reads the idle rows, not the domain. Not a partial
# index: PostgreSQL estimates from an expression index's statistics only when it is not partial.
IDLE_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_account_idle_since ON account "
    "(domain_id, mapi_ews_enabled, COALESCE(last_login, mapi_ews_enabled_at))"
)


class Migration(migrations.Migration):
    dependencies = [('api', '0005_usage_days')]

    initial = False

    operations = [
        ops.RunSQL(IDLE_INDEX, "DROP INDEX IF EXISTS idx_account_idle_since"),
    ]
