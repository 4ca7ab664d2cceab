from tortoise import migrations
from tortoise.migrations import operations as ops

# mapiEwsClients at hosting scale (api/services/client_rollup.py), PostgreSQL only: the clients
# of each finished day, rolled up once. SQLite answers from login_event itself. A client's name
# is '' here where login_event has NULL, so that every key is a plain equality.
ROLLUP_TABLES = (
    # The days rolled up for every domain: their events before rolled_through.
    "CREATE TABLE IF NOT EXISTS login_rollup_day (day date PRIMARY KEY, "
    "rolled_through timestamptz NOT NULL)",
    # A domain's day that a late report may change after it was rolled up: read from login_event
    # until it is rolled up again, once no such report came for a while.
    "CREATE TABLE IF NOT EXISTS login_rollup_stale (domain_id integer NOT NULL REFERENCES domain (id) "
    "ON DELETE CASCADE, day date NOT NULL, marked_at timestamptz NOT NULL, "
    "PRIMARY KEY (domain_id, day))",
    # A day's logins, refusals and last report by protocol and client.
    "CREATE TABLE IF NOT EXISTS login_client_day (domain_id integer NOT NULL REFERENCES domain (id) "
    "ON DELETE CASCADE, day date NOT NULL, protocol varchar(8) NOT NULL, "
    "client_name varchar(256) NOT NULL, logins bigint NOT NULL, refused bigint NOT NULL, "
    "last_seen timestamptz NOT NULL, PRIMARY KEY (domain_id, day, protocol, client_name))",
    # Each username's last rolled-up day with a protocol and client.
    "CREATE TABLE IF NOT EXISTS login_client_account (domain_id integer NOT NULL REFERENCES "
    "domain (id) ON DELETE CASCADE, protocol varchar(8) NOT NULL, client_name varchar(256) NOT NULL, "
    "username varchar(64) NOT NULL, last_day date NOT NULL, "
    "PRIMARY KEY (domain_id, protocol, client_name, username))",
    "CREATE INDEX IF NOT EXISTS login_client_account_last_day ON login_client_account (last_day)",
    # How many usernames have each last day, by protocol and client: distinct accounts over any
    # window of whole days is a sum of a few rows.
    "CREATE TABLE IF NOT EXISTS login_client_reach (domain_id integer NOT NULL REFERENCES domain (id) "
    "ON DELETE CASCADE, protocol varchar(8) NOT NULL, client_name varchar(256) NOT NULL, "
    "last_day date NOT NULL, accounts integer NOT NULL, "
    "PRIMARY KEY (domain_id, protocol, client_name, last_day))",
)
DROP_TABLES = (
    "DROP TABLE IF EXISTS login_client_reach, login_client_account, login_client_day, "
    "login_rollup_stale, login_rollup_day"
)


async def create_rollup(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        for statement in ROLLUP_TABLES:
            await schema_editor.client.execute_script(statement)


async def drop_rollup(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(DROP_TABLES)


class Migration(migrations.Migration):
    dependencies = [('api', '0013_who_may_connect')]

    initial = False

    operations = [
        ops.RunPython(create_rollup, drop_rollup),
    ]
