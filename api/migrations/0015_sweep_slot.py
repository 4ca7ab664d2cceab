from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('api', '0014_client_rollup')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SweepSlot',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('last_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sweep_slot', 'app': 'api', 'pk_attr': 'name'},
            bases=['Model'],
        ),
    ]
