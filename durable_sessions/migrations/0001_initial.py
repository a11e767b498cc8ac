# Takes over the session models from accounts (accounts 0002 and 0003 created
# their tables, whose names stay): state only, so no session row is touched and
# everyone signed in stays signed in. Their content types move too, so staff
# keep the permissions they had on sessions.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ['usersession', 'sessioncachejournal']


def content_types_forward(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    ContentType.objects.filter(app_label='accounts', model__in=MODELS).update(app_label='durable_sessions')


def content_types_backward(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    ContentType.objects.filter(app_label='durable_sessions', model__in=MODELS).update(app_label='accounts')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0004_sessions_move_to_durable_sessions'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='UserSession',
                    fields=[
                        ('session_key', models.CharField(max_length=40, primary_key=True, serialize=False, verbose_name='session key')),
                        ('session_data', models.TextField(verbose_name='session data')),
                        ('expire_date', models.DateTimeField(db_index=True, verbose_name='expire date')),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True, verbose_name='IP address')),
                        ('user_agent', models.CharField(blank=True, max_length=400)),
                        ('created_at', models.DateTimeField(blank=True, null=True)),
                        ('last_activity', models.DateTimeField(blank=True, null=True)),
                        ('authenticated_at', models.DateTimeField(blank=True, null=True)),
                        ('user', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='sessions', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'session',
                        'verbose_name_plural': 'sessions',
                        'db_table': 'accounts_usersession',
                        'abstract': False,
                        'indexes': [models.Index(fields=['user', 'expire_date'], name='session_user_expiry'), models.Index(fields=['last_activity'], name='session_last_activity')],
                    },
                ),
                migrations.CreateModel(
                    name='SessionCacheJournal',
                    fields=[
                        ('cache_key', models.CharField(max_length=255, primary_key=True, serialize=False)),
                        ('failed_at', models.DateTimeField()),
                    ],
                    options={
                        'verbose_name': 'session cache journal entry',
                        'verbose_name_plural': 'session cache journal',
                        'db_table': 'accounts_sessioncachejournal',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
