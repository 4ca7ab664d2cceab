from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# account_recency is the account's (domain, enabled, enable time, last login), kept by the
# database itself: every INSERT and UPDATE of `account`, whoever sends it, copies those columns
# in the same statement. On PostgreSQL statement triggers read the rows a statement wrote from a
# transition table (one INSERT or UPDATE for a whole batch, not one per row), and write only the
# rows whose copy differs; SQLite's triggers are per row, on the four columns only. An account's
# removal takes its row with it (ON DELETE CASCADE).
COLUMNS = "domain_id, mapi_ews_enabled, mapi_ews_enabled_at, last_login"
POSTGRES_TRIGGERS = [
    "CREATE FUNCTION account_recency_inserted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"INSERT INTO account_recency (account_id, {COLUMNS}) SELECT id, {COLUMNS} FROM inserted; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER account_recency_insert AFTER INSERT ON account "
    "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
    "EXECUTE FUNCTION account_recency_inserted()",
    "CREATE FUNCTION account_recency_updated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE account_recency r SET domain_id = u.domain_id, "
    "mapi_ews_enabled = u.mapi_ews_enabled, mapi_ews_enabled_at = u.mapi_ews_enabled_at, "
    "last_login = u.last_login FROM updated u WHERE r.account_id = u.id "
    "AND (r.domain_id, r.mapi_ews_enabled, r.mapi_ews_enabled_at, r.last_login) "
    "IS DISTINCT FROM (u.domain_id, u.mapi_ews_enabled, u.mapi_ews_enabled_at, u.last_login); "
    "RETURN NULL; END $$",
    "CREATE TRIGGER account_recency_update AFTER UPDATE ON account "
    "REFERENCING NEW TABLE AS updated FOR EACH STATEMENT "
    "EXECUTE FUNCTION account_recency_updated()",
    # Room on each page for a report's new version of its account row beside the old one, which
    # a heap-only update needs (new pages only: existing ones fill as rows move).
    "ALTER TABLE account SET (fillfactor = 85)",
]
DROP_POSTGRES_TRIGGERS = [
    "DROP TRIGGER IF EXISTS account_recency_insert ON account",
    "DROP TRIGGER IF EXISTS account_recency_update ON account",
    "DROP FUNCTION IF EXISTS account_recency_inserted()",
    "DROP FUNCTION IF EXISTS account_recency_updated()",
    "ALTER TABLE account RESET (fillfactor)",
]
SQLITE_TRIGGERS = [
    "CREATE TRIGGER account_recency_insert AFTER INSERT ON account BEGIN "
    f"INSERT INTO account_recency (account_id, {COLUMNS}) VALUES (NEW.id, NEW.domain_id, "
    "NEW.mapi_ews_enabled, NEW.mapi_ews_enabled_at, NEW.last_login); END",
    f"CREATE TRIGGER account_recency_update AFTER UPDATE OF {COLUMNS} ON account BEGIN "
    "UPDATE account_recency SET domain_id = NEW.domain_id, "
    "mapi_ews_enabled = NEW.mapi_ews_enabled, mapi_ews_enabled_at = NEW.mapi_ews_enabled_at, "
    "last_login = NEW.last_login WHERE account_id = NEW.id; END",
]
DROP_SQLITE_TRIGGERS = [
    "DROP TRIGGER IF EXISTS account_recency_insert",
    "DROP TRIGGER IF EXISTS account_recency_update",
]
# Filled after the triggers exist: on PostgreSQL, creating them locks `account` against writes
# until this migration commits, so no change falls between the copy and the triggers.
BACKFILL = (
    f"INSERT INTO account_recency (account_id, {COLUMNS}) SELECT id, {COLUMNS} FROM account"
)
# Enabled accounts that never logged in are idle from their enable time: a partial index, which
# a report (it always sets last_login) never writes to. Those that did are found through the
# (domain, enabled, last_login) index.
NEVER_LOGGED_IN_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_account_recency_never ON account_recency "
    "(domain_id, mapi_ews_enabled, mapi_ews_enabled_at) WHERE last_login IS NULL"
)
# Migration 0006's, which named last_login on the account itself.
OLD_IDLE_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_account_idle_since ON account "
    "(domain_id, mapi_ews_enabled, COALESCE(last_login, mapi_ews_enabled_at))"
)


async def keep_recency(apps, schema_editor):
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        await client.execute_script(statement)
    await client.execute_script(BACKFILL)
    await client.execute_script(NEVER_LOGGED_IN_INDEX)
    await client.execute_script("DROP INDEX IF EXISTS idx_account_idle_since")


async def stop_keeping_recency(apps, schema_editor):
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    for statement in DROP_POSTGRES_TRIGGERS if postgres else DROP_SQLITE_TRIGGERS:
        await client.execute_script(statement)
    await client.execute_script(OLD_IDLE_INDEX)

class Migration(migrations.Migration):
    dependencies = [('api', '0010_login_event_by_account')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountRecency',
            fields=[
                ('account', fields.OneToOneField('api.Account', source_field='account_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='recency', on_delete=OnDelete.CASCADE)),
                ('domain_id', fields.IntField()),
                ('mapi_ews_enabled', fields.BooleanField()),
                ('mapi_ews_enabled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_login', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'account_recency', 'app': 'api', 'indexes': [Index(fields=['domain_id', 'mapi_ews_enabled', 'last_login', 'account_id'])], 'pk_attr': 'account_id', 'table_description': 'The columns the tab orders and finds idle accounts by, in a narrow row of their own.'},
            bases=['Model'],
        ),
        ops.RemoveIndex(
            model_name='Account',
            name=None,
            fields=['domain_id', 'mapi_ews_enabled', 'last_login', 'id'],
        ),
        ops.RunPython(keep_recency, stop_keeping_recency),
    ]
