# The session models now belong to durable_sessions, which takes them over with
# their tables (durable_sessions 0001): here they leave accounts' state only.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_session_cache_journal'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='UserSession'),
                migrations.DeleteModel(name='SessionCacheJournal'),
            ],
            database_operations=[],
        ),
    ]
