from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# The event a report repeats is found by its account (and time) through this index, the one
# index that matches that lookup, so the planner takes it even before a new day's partition has
# statistics. On PostgreSQL the index on occurred_at alone goes: it competed for that lookup, and
# retention there drops whole days instead of deleting by age.
OCCURRED_AT_INDEX = "idx_login_event_occurre_5a54f5"


async def drop_occurred_at_index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(f"DROP INDEX IF EXISTS {OCCURRED_AT_INDEX}")


async def restore_occurred_at_index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(
            f"CREATE INDEX IF NOT EXISTS {OCCURRED_AT_INDEX} ON login_event (occurred_at)"
        )


class Migration(migrations.Migration):
    dependencies = [('api', '0009_login_event_partitions')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='LoginEvent',
            index=Index(fields=['account_id', 'occurred_at']),
        ),
        ops.RunPython(drop_occurred_at_index, restore_occurred_at_index),
    ]
