from tortoise import migrations
from tortoise.migrations import operations as ops
from api.models.audit import AuditAction
from api.models.domains import MailProtocol
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('api', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='GatewayToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('created_by', fields.CharField(max_length=320)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'gateway_token', 'app': 'api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LoginEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('domain', fields.ForeignKeyField('api.Domain', source_field='domain_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('account', fields.ForeignKeyField('api.Account', source_field='account_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('username', fields.CharField(max_length=64)),
                ('protocol', fields.CharEnumField(description='MAPI: MAPI\nEWS: EWS', enum_type=MailProtocol, max_length=8)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('client_address', fields.CharField(null=True, max_length=45)),
                ('allowed', fields.BooleanField()),
            ],
            options={'table': 'login_event', 'app': 'api', 'indexes': [Index(fields=['domain_id', 'occurred_at', 'id']), Index(fields=['domain_id', 'username', 'occurred_at', 'id']), Index(fields=['occurred_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='AuditEntry',
            name='action',
            field=fields.CharEnumField(description='MAPI_EWS_ENABLED: MAPI_EWS_ENABLED\nMAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nDOMAIN_CREATED: DOMAIN_CREATED\nDOMAIN_UPDATED: DOMAIN_UPDATED\nACCOUNT_CREATED: ACCOUNT_CREATED\nGATEWAY_TOKEN_CREATED: GATEWAY_TOKEN_CREATED\nGATEWAY_TOKEN_REVOKED: GATEWAY_TOKEN_REVOKED', enum_type=AuditAction, max_length=32),
        ),
    ]
