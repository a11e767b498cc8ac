# Rows were keyed by the cookie's value: whoever read the table could sign in
# as anyone. They are keyed by a keyed hash of it from now on (see
# durable_sessions.sealing); this rewrites the keys of the sessions that exist,
# so everyone signed in stays signed in. The journal's cache keys are rewritten
# the same way, and the Redis entries under the old keys are dropped where
# Redis answers (the new code never reads them; they expire on their own).

from django.conf import settings
from django.db import migrations
from django.utils.crypto import salted_hmac

# Frozen copies of durable_sessions.sealing's, as of this migration.
STORAGE_KEY_SALT = 'durable_sessions.storage_key'
STORAGE_KEY_LENGTH = 40
KEY_PREFIX = 'django.contrib.sessions.cached_db'
BATCH = 500


def storage_key(session_key):
    return salted_hmac(STORAGE_KEY_SALT, session_key, algorithm='sha256').hexdigest()[:STORAGE_KEY_LENGTH]


def forget_in_redis(cache_keys):
    from django.core.cache import caches

    try:
        caches[settings.SESSION_CACHE_ALIAS].delete_many(cache_keys)
    except Exception:  # Redis down: the entries expire; nothing reads them
        pass


def hash_keys(apps, schema_editor):
    UserSession = apps.get_model('durable_sessions', 'UserSession')
    Journal = apps.get_model('durable_sessions', 'SessionCacheJournal')
    raw = [k for k in UserSession.objects.values_list('session_key', flat=True) if len(k) != STORAGE_KEY_LENGTH]
    for start in range(0, len(raw), BATCH):
        batch = raw[start : start + BATCH]
        for key in batch:
            UserSession.objects.filter(session_key=key).update(session_key=storage_key(key))
        forget_in_redis([KEY_PREFIX + key for key in batch])
    for entry in Journal.objects.all():
        key = entry.cache_key.removeprefix(KEY_PREFIX)
        if entry.cache_key.startswith(KEY_PREFIX) and len(key) != STORAGE_KEY_LENGTH:
            Journal.objects.filter(cache_key=entry.cache_key).delete()
            Journal.objects.update_or_create(cache_key=KEY_PREFIX + storage_key(key), defaults={'failed_at': entry.failed_at})


class Migration(migrations.Migration):

    dependencies = [
        ('durable_sessions', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(hash_keys, migrations.RunPython.noop, elidable=False),
    ]
