from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Each domain's MAPI/EWS count as its accounts stand (api/services/domains.py keeps it from now).
RECOUNT = (
    "UPDATE domain SET mapi_ews_enabled_count = (SELECT count(*) FROM account "
    "WHERE account.domain_id = domain.id AND account.mapi_ews_enabled)"
)
# `search` on PostgreSQL: Tortoise writes icontains as UPPER(CAST(column AS VARCHAR)) LIKE
# UPPER(pattern), so trigram indexes on exactly those expressions serve it without a scan.
# pg_trgm is a trusted extension: the database's owner may create it.
TRIGRAM_INDEXES = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS idx_account_username_trgm ON account "
    "USING gin (UPPER(CAST(username AS VARCHAR)) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS idx_account_name_trgm ON account "
    "USING gin (UPPER(CAST(name AS VARCHAR)) gin_trgm_ops)",
]
DROP_TRIGRAM_INDEXES = [
    "DROP INDEX IF EXISTS idx_account_username_trgm",
    "DROP INDEX IF EXISTS idx_account_name_trgm",
]


async def recount(apps, schema_editor):
    await schema_editor.client.execute_script(RECOUNT)


async def trigram_indexes(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        for statement in TRIGRAM_INDEXES:
            await schema_editor.client.execute_script(statement)


async def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        for statement in DROP_TRIGRAM_INDEXES:
            await schema_editor.client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('api', '0006_idle_index')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Domain',
            name='mapi_ews_enabled_count',
            field=fields.IntField(default=0),
        ),
        ops.RunPython(recount, ops.RunPython.noop),
        ops.RunPython(trigram_indexes, drop_trigram_indexes),
    ]
