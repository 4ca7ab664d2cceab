from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('api', '0007_scale')]

    initial = False

    operations = [
        ops.AddField(
            model_name='LoginEvent',
            name='count',
            field=fields.IntField(default=1),
        ),
        ops.AddField(
            model_name='LoginEvent',
            name='last_occurred_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
