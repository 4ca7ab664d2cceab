from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from datetime import UTC, date, datetime


def _moment(value):
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


async def fill_usage_days(conn):
    """Each domain's past days, replayed from the audit log: every enable and disable made
    through the API was audited in its own transaction, one entry per account. A domain starts
    at 0 on the day it was created; when the replay does not end at the real count of today
    (accounts enabled outside the API, by an import), every day is shifted by the difference,
    never below 0. The log does not say what the limit was: past days get today's."""
    p = "?" if conn.capabilities.dialect == "sqlite" else "$"
    domains = await conn.execute_query_dict(
        "SELECT id, created_at, max_mapi_ews_accounts FROM domain"
    )
    for domain in domains:
        entries = await conn.execute_query_dict(
            "SELECT occurred_at, action FROM audit_entry WHERE domain_id = " + p + "1 "
            "AND action IN ('MAPI_EWS_ENABLED', 'MAPI_EWS_DISABLED') ORDER BY occurred_at, id",
            [domain["id"]],
        )
        counted = await conn.execute_query_dict(
            "SELECT count(*) AS n FROM account WHERE domain_id = " + p + "1 AND mapi_ews_enabled",
            [domain["id"]],
        )
        days: dict[date, list[int]] = {_moment(domain["created_at"]).date(): [0, 0]}
        count = 0
        for entry in entries:
            before = count
            count += 1 if entry["action"] == "MAPI_EWS_ENABLED" else -1
            day = days.setdefault(_moment(entry["occurred_at"]).date(), [before, before])
            day[0] = max(day[0], before, count)
            day[1] = count
        shift = int(counted[0]["n"]) - count
        for day, (peak, end) in sorted(days.items()):
            await conn.execute_query(
                "INSERT INTO mapi_ews_usage_day (domain_id, day, peak_enabled, enabled_at_end, "
                "allowance) VALUES (" + ", ".join(f"{p}{i}" for i in range(1, 6)) + ")",
                [domain["id"], day, max(peak + shift, 0), max(end + shift, 0),
                 domain["max_mapi_ews_accounts"]],
            )


async def backfill(apps, schema_editor):
    await fill_usage_days(schema_editor.client)

class Migration(migrations.Migration):
    dependencies = [('api', '0004_idle_reclaim')]

    initial = False

    operations = [
        ops.CreateModel(
            name='UsageDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('domain', fields.ForeignKeyField('api.Domain', source_field='domain_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('peak_enabled', fields.IntField()),
                ('enabled_at_end', fields.IntField()),
                ('allowance', fields.IntField(null=True)),
            ],
            options={'table': 'mapi_ews_usage_day', 'app': 'api', 'unique_together': (('domain', 'day'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(backfill, ops.RunPython.noop),
    ]
