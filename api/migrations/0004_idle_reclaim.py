from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('api', '0003_protocol_sessions')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Domain',
            name='mapi_ews_idle_reclaim_days',
            field=fields.IntField(null=True),
        ),
    ]
