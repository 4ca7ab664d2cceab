from tortoise import migrations
from tortoise.migrations import operations as ops
from api.models.audit import AuditAction
from api.models.domains import MailProtocol
from api.models.sessions import SessionEndReason
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('api', '0002_login_activity')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ProtocolSession',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('gateway', fields.ForeignKeyField('api.GatewayToken', source_field='gateway_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('session_id', fields.CharField(max_length=128)),
                ('domain', fields.ForeignKeyField('api.Domain', source_field='domain_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('account', fields.ForeignKeyField('api.Account', source_field='account_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('username', fields.CharField(max_length=64)),
                ('protocol', fields.CharEnumField(description='MAPI: MAPI\nEWS: EWS', enum_type=MailProtocol, max_length=8)),
                ('client_address', fields.CharField(null=True, max_length=45)),
                ('client_name', fields.CharField(null=True, max_length=256)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('end_reason', fields.CharEnumField(null=True, description='MAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nDISCONNECTED_BY_ADMIN: DISCONNECTED_BY_ADMIN\nACCOUNT_REMOVED: ACCOUNT_REMOVED\nENDED_BY_GATEWAY: ENDED_BY_GATEWAY\nEXPIRED: EXPIRED', enum_type=SessionEndReason, max_length=32)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'protocol_session', 'app': 'api', 'unique_together': (('gateway', 'session_id'),), 'indexes': [Index(fields=['domain_id', 'started_at', 'id']), Index(fields=['account_id', 'expires_at']), Index(fields=['expires_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='AuditEntry',
            name='action',
            field=fields.CharEnumField(description='MAPI_EWS_ENABLED: MAPI_EWS_ENABLED\nMAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nMAPI_EWS_DISCONNECTED: MAPI_EWS_DISCONNECTED\nDOMAIN_CREATED: DOMAIN_CREATED\nDOMAIN_UPDATED: DOMAIN_UPDATED\nACCOUNT_CREATED: ACCOUNT_CREATED\nGATEWAY_TOKEN_CREATED: GATEWAY_TOKEN_CREATED\nGATEWAY_TOKEN_REVOKED: GATEWAY_TOKEN_REVOKED', enum_type=AuditAction, max_length=32),
        ),
        ops.AddField(
            model_name='LoginEvent',
            name='client_name',
            field=fields.CharField(null=True, max_length=256),
        ),
    ]
