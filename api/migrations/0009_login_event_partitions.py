from datetime import UTC, date, datetime, time, timedelta

from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL only: login_event becomes a table partitioned by day of occurred_at (see
# api/services/login_partitions.py), with a default partition, and its rows are copied over in
# this migration's transaction. The primary key becomes (id, occurred_at): a partitioned table's
# unique keys must hold its partition column. Ids keep coming from the same sequence. SQLite keeps
# its one table.
AHEAD_DAYS = 7
COLUMNS = (
    "id, domain_id, account_id, username, protocol, occurred_at, client_address, allowed, "
    "client_name, count, last_occurred_at"
)
RENAME_OLD = [
    "ALTER TABLE login_event RENAME TO login_event_unpartitioned",
    "ALTER TABLE login_event_unpartitioned RENAME CONSTRAINT login_event_pkey "
    "TO login_event_unpartitioned_pkey",
    "ALTER INDEX idx_login_event_domain__16572b RENAME TO idx_login_event_unpartitioned_1",
    "ALTER INDEX idx_login_event_domain__f57f9e RENAME TO idx_login_event_unpartitioned_2",
    "ALTER INDEX idx_login_event_occurre_5a54f5 RENAME TO idx_login_event_unpartitioned_3",
    "ALTER SEQUENCE login_event_id_seq OWNED BY NONE",
]
CREATE = [
    "CREATE TABLE login_event ("
    "id BIGINT NOT NULL DEFAULT nextval('login_event_id_seq'), "
    "domain_id INT NOT NULL CONSTRAINT login_event_domain_id_fkey REFERENCES domain (id) "
    "ON DELETE CASCADE, "
    "account_id INT CONSTRAINT login_event_account_id_fkey REFERENCES account (id) "
    "ON DELETE SET NULL, "
    "username VARCHAR(64) NOT NULL, "
    "protocol VARCHAR(8) NOT NULL, "
    "occurred_at TIMESTAMPTZ NOT NULL, "
    "client_address VARCHAR(45), "
    "allowed BOOL NOT NULL, "
    "client_name VARCHAR(256), "
    "count INT NOT NULL DEFAULT 1, "
    "last_occurred_at TIMESTAMPTZ, "
    "PRIMARY KEY (id, occurred_at)"
    ") PARTITION BY RANGE (occurred_at)",
    # The same indexes as before, now one per partition.
    "CREATE INDEX idx_login_event_domain__16572b ON login_event "
    "(domain_id, username, occurred_at, id)",
    "CREATE INDEX idx_login_event_domain__f57f9e ON login_event (domain_id, occurred_at, id)",
    "CREATE INDEX idx_login_event_occurre_5a54f5 ON login_event (occurred_at)",
    "CREATE TABLE login_event_default PARTITION OF login_event DEFAULT",
]
FINISH = [
    "INSERT INTO login_event (" + COLUMNS + ") SELECT " + COLUMNS + " FROM login_event_unpartitioned",
    "DROP TABLE login_event_unpartitioned",
    "ALTER SEQUENCE login_event_id_seq OWNED BY login_event.id",
]


def _bound(day: date) -> str:
    return f"'{datetime.combine(day, time(), tzinfo=UTC).isoformat()}'"


def _partition(day: date) -> str:
    return (
        f"CREATE TABLE login_event_p{day:%Y%m%d} PARTITION OF login_event "
        f"FOR VALUES FROM ({_bound(day)}) TO ({_bound(day + timedelta(days=1))})"
    )


async def partition(apps, schema_editor):
    conn = schema_editor.client
    if conn.capabilities.dialect != "postgres":
        return
    for statement in RENAME_OLD + CREATE:
        await conn.execute_script(statement)
    # A partition for each day the events cover (the retention keeps that to about 90) and for
    # today and the week ahead; anything else (far outliers) goes to the default partition.
    rows = await conn.execute_query_dict(
        "SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day "
        "FROM login_event_unpartitioned"
    )
    today = datetime.now(UTC).date()
    days = {row["day"] for row in rows} | {today + timedelta(days=n) for n in range(AHEAD_DAYS + 1)}
    for day in sorted(days):
        if abs((day - today).days) <= 400:
            await conn.execute_script(_partition(day))
    for statement in FINISH:
        await conn.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('api', '0008_login_coalescing')]

    initial = False

    operations = [
        ops.RunPython(partition, ops.RunPython.noop),
    ]
