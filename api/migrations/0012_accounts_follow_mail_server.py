from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# Accounts follow the mail server: an account may carry the mail server's id (unique within its
# domain), a domain may be removed (its row stays for billing and audit), and a session outlives
# its removed account (told to end, it stays until its gateway closes it: the backlog). Tortoise
# alters the session's column to nullable on both databases and remakes the table on SQLite;
# PostgreSQL's foreign key is replaced here, as Tortoise does not change ON DELETE.
SESSION_ACCOUNT_SET_NULL = """
DO $$
DECLARE fk text;
BEGIN
  SELECT c.conname INTO fk FROM pg_constraint c
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
  WHERE c.conrelid = 'protocol_session'::regclass AND c.contype = 'f' AND a.attname = 'account_id';
  IF fk IS NOT NULL THEN
    EXECUTE format('ALTER TABLE protocol_session DROP CONSTRAINT %I', fk);
  END IF;
  ALTER TABLE protocol_session ADD CONSTRAINT protocol_session_account_id_fkey
    FOREIGN KEY (account_id) REFERENCES account (id) ON DELETE {action};
END $$
"""


# Tortoise's remake of a SQLite table (its only way to change a foreign key there) creates the
# new table without the indexes and unique constraints of the old one: they are made again here,
# under the names Tortoise gave them (tests/test_migrations.py compares both databases).
SQLITE_SESSION_INDEXES = [
    'CREATE UNIQUE INDEX IF NOT EXISTS "uid_protocol_se_gateway_25b5cd" '
    "ON protocol_session (gateway_id, session_id)",
    'CREATE INDEX IF NOT EXISTS "idx_protocol_se_account_d508c4" '
    "ON protocol_session (account_id, expires_at)",
    'CREATE INDEX IF NOT EXISTS "idx_protocol_se_domain__73963e" '
    "ON protocol_session (domain_id, started_at, id)",
    'CREATE INDEX IF NOT EXISTS "idx_protocol_se_expires_84c148" ON protocol_session (expires_at)',
]


# The mail server's id is unique within a domain where there is one. Partial, so that no lookup
# by username can pick it: without statistics (a domain filling up in one transaction, as an
# import does), a (domain_id, external_id) index looked as good as (domain_id, username) for a
# username, and each lookup read the whole domain.
EXTERNAL_ID_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS account_external_id ON account (domain_id, external_id) "
    "WHERE external_id IS NOT NULL"
)


async def follow_the_mail_server(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script(EXTERNAL_ID_INDEX)
    if client.capabilities.dialect == "postgres":
        await client.execute_script(SESSION_ACCOUNT_SET_NULL.format(action="SET NULL"))
    else:
        for statement in SQLITE_SESSION_INDEXES:
            await client.execute_script(statement)


async def stop_following_the_mail_server(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script("DROP INDEX IF EXISTS account_external_id")
    if client.capabilities.dialect == "postgres":
        await client.execute_script(SESSION_ACCOUNT_SET_NULL.format(action="CASCADE"))
    else:
        for statement in SQLITE_SESSION_INDEXES:
            await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('api', '0011_recency')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Account',
            name='external_id',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AlterModelOptions(
            name='AccountRecency',
            options={'table': 'account_recency', 'app': 'api', 'indexes': [Index(fields=['domain_id', 'mapi_ews_enabled', 'last_login', 'account_id'])], 'pk_attr': 'account_id', 'table_description': 'The columns the tab orders and finds idle accounts by, in a narrow row of their own.'},
        ),
        ops.AddField(
            model_name='Domain',
            name='removed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='ProtocolSession',
            name='account',
            field=fields.ForeignKeyField('api.Account', source_field='account_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
        ops.RunPython(follow_the_mail_server, stop_following_the_mail_server),
    ]
