from tortoise import migrations
from tortoise.migrations import operations as ops
from api.models.audit import AuditAction
from api.models.domains import MailProtocol
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Domain',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=253)),
                ('mapi_ews_account_management', fields.BooleanField(default=True)),
                ('max_mapi_ews_accounts', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'domain', 'app': 'api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('domain', fields.ForeignKeyField('api.Domain', source_field='domain_id', db_constraint=True, to_field='id', related_name='accounts', on_delete=OnDelete.CASCADE)),
                ('username', fields.CharField(max_length=64)),
                ('name', fields.CharField(null=True, max_length=256)),
                ('password_hash', fields.CharField(max_length=255)),
                ('is_domain_admin', fields.BooleanField(default=False)),
                ('mapi_ews_enabled', fields.BooleanField(default=False)),
                ('mapi_ews_enabled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_login', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_login_protocol', fields.CharEnumField(null=True, description='MAPI: MAPI\nEWS: EWS', enum_type=MailProtocol, max_length=8)),
                ('last_mapi_login', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_ews_login', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'account', 'app': 'api', 'unique_together': (('domain', 'username'),), 'indexes': [Index(fields=['domain_id', 'mapi_ews_enabled', 'username', 'id']), Index(fields=['domain_id', 'mapi_ews_enabled', 'last_login', 'id']), Index(fields=['domain_id', 'mapi_ews_enabled', 'name', 'id']), Index(fields=['domain_id', 'mapi_ews_enabled', 'mapi_ews_enabled_at', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=320)),
                ('action', fields.CharEnumField(description='MAPI_EWS_ENABLED: MAPI_EWS_ENABLED\nMAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nDOMAIN_CREATED: DOMAIN_CREATED\nDOMAIN_UPDATED: DOMAIN_UPDATED\nACCOUNT_CREATED: ACCOUNT_CREATED\nGATEWAY_TOKEN_CREATED: GATEWAY_TOKEN_CREATED', enum_type=AuditAction, max_length=32)),
                ('domain', fields.ForeignKeyField('api.Domain', source_field='domain_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('target', fields.CharField(null=True, max_length=320)),
            ],
            options={'table': 'audit_entry', 'app': 'api', 'indexes': [Index(fields=['domain_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SystemAdmin',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=64)),
                ('password_hash', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'system_admin', 'app': 'api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('family', fields.CharField(db_index=True, max_length=32)),
                ('account', fields.ForeignKeyField('api.Account', source_field='account_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('system_admin', fields.ForeignKeyField('api.SystemAdmin', source_field='system_admin_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_token', 'app': 'api', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
