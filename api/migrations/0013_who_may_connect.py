from importlib import import_module

from tortoise import migrations
from tortoise.migrations import operations as ops
from api.models.access import ClientAccessMode
from api.models.activity import LoginRefusal
from api.models.audit import AuditAction
from api.models.sessions import SessionEndReason
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

# Who may connect, and with what: an account's protocols (both, for every account so far), a
# domain's client access policy (no row: the default, every client in), and why a login was
# refused. Until now the only reason was a disabled account: the refused events say so.
REFUSALS_SO_FAR = "UPDATE login_event SET refusal = 'MAPI_EWS_DISABLED' WHERE NOT allowed"


# Changing the end reasons' column makes Tortoise remake protocol_session on SQLite, without
# its indexes: made again, as migration 0012 does.
SQLITE_SESSION_INDEXES = import_module(
    "api.migrations.0012_accounts_follow_mail_server"
).SQLITE_SESSION_INDEXES
# The audit's (domain_id, id) index went the same way in migrations 0002 and 0003 (the action's
# column changed): made again here, under its own name, and never dropped.
SQLITE_AUDIT_INDEX = "CREATE INDEX IF NOT EXISTS audit_entry_domain ON audit_entry (domain_id, id)"


async def explain_refusals(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script(REFUSALS_SO_FAR)
    if client.capabilities.dialect != "postgres":
        for statement in [*SQLITE_SESSION_INDEXES, SQLITE_AUDIT_INDEX]:
            await client.execute_script(statement)


async def forget_refusals(apps, schema_editor):
    pass  # the column goes with the migration's other operations


class Migration(migrations.Migration):
    dependencies = [('api', '0012_accounts_follow_mail_server')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ClientAccessPolicy',
            fields=[
                ('domain', fields.OneToOneField('api.Domain', source_field='domain_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('mode', fields.CharEnumField(description='BLOCK_LISTED: BLOCK_LISTED\nALLOW_LISTED_ONLY: ALLOW_LISTED_ONLY', enum_type=ClientAccessMode, max_length=24)),
                ('rules', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('allow_unnamed_clients', fields.BooleanField(default=True)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_by', fields.CharField(max_length=320)),
            ],
            options={'table': 'client_access_policy', 'app': 'api', 'pk_attr': 'domain_id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Account',
            name='mapi_ews_protocols',
            field=fields.SmallIntField(default=3, db_default=3),
        ),
        ops.AlterField(
            model_name='AuditEntry',
            name='action',
            field=fields.CharEnumField(description='MAPI_EWS_ENABLED: MAPI_EWS_ENABLED\nMAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nMAPI_EWS_DISCONNECTED: MAPI_EWS_DISCONNECTED\nDOMAIN_CREATED: DOMAIN_CREATED\nDOMAIN_UPDATED: DOMAIN_UPDATED\nACCOUNT_CREATED: ACCOUNT_CREATED\nGATEWAY_TOKEN_CREATED: GATEWAY_TOKEN_CREATED\nGATEWAY_TOKEN_REVOKED: GATEWAY_TOKEN_REVOKED\nACCOUNT_UPDATED: ACCOUNT_UPDATED\nACCOUNT_RENAMED: ACCOUNT_RENAMED\nACCOUNT_REMOVED: ACCOUNT_REMOVED\nDOMAIN_REMOVED: DOMAIN_REMOVED\nMAPI_EWS_PROTOCOLS_CHANGED: MAPI_EWS_PROTOCOLS_CHANGED\nCLIENT_ACCESS_POLICY_CHANGED: CLIENT_ACCESS_POLICY_CHANGED', enum_type=AuditAction, max_length=32),
        ),
        ops.AddField(
            model_name='LoginEvent',
            name='refusal',
            field=fields.CharEnumField(null=True, description='MAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nPROTOCOL_NOT_ALLOWED: PROTOCOL_NOT_ALLOWED\nCLIENT_NOT_ALLOWED: CLIENT_NOT_ALLOWED', enum_type=LoginRefusal, max_length=24),
        ),
        ops.AlterField(
            model_name='ProtocolSession',
            name='end_reason',
            field=fields.CharEnumField(null=True, description='MAPI_EWS_DISABLED: MAPI_EWS_DISABLED\nDISCONNECTED_BY_ADMIN: DISCONNECTED_BY_ADMIN\nACCOUNT_REMOVED: ACCOUNT_REMOVED\nACCESS_POLICY: ACCESS_POLICY\nENDED_BY_GATEWAY: ENDED_BY_GATEWAY\nEXPIRED: EXPIRED', enum_type=SessionEndReason, max_length=32),
        ),
        ops.AlterModelOptions(
            name='ClientAccessPolicy',
            options={'table': 'client_access_policy', 'app': 'api', 'pk_attr': 'domain_id'},
        ),
        ops.RunPython(explain_refusals, forget_refusals),
    ]
