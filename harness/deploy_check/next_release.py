"""Make the next release of the shop from a copy of this one, to roll out over it.

The next release is what a careful team ships: an additive migration (a
nullable column, which the running release ignores), code that writes it, and a
change a shopper can see. Its build context is a copy of the repository with
those edits; the repository itself is not touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Shown in every page's footer by the next release only: how a page tells which release served it.
RELEASE_NOTE = "Orders now record where they were placed."
# The column the next release adds to shop_order and fills at checkout.
COLUMN = "channel"
CHANNEL = "web"

MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "{previous}")]

    operations = [
        migrations.AddField("order", "{column}", models.CharField(blank=True, max_length=20, null=True)),
    ]
"""

# (file, text there today, text in the next release): each must be found exactly once.
EDITS = (
    (
        "shop/models.py",
        "    total = models.DecimalField(max_digits=12, decimal_places=2)\n",
        "    total = models.DecimalField(max_digits=12, decimal_places=2)\n"
        f"    {COLUMN} = models.CharField(max_length=20, null=True, blank=True)\n",
    ),
    (
        "shop/services.py",
        "                    total=sum((line.line_total for line in lines), 0),\n",
        "                    total=sum((line.line_total for line in lines), 0),\n"
        f'                    {COLUMN}="{CHANNEL}",\n',
    ),
    (
        "templates/base.html",
        "never in the server that answers you.</footer>",
        f'never in the server that answers you. <span class="release-note">{RELEASE_NOTE}</span></footer>',
    ),
)


def next_release(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` as the next release; return ``dest``, a build context."""
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".podman", ".django-tests", ".cluster", "artifacts", "staticfiles", "data", "__pycache__"
        ),
    )
    for name, today, tomorrow in EDITS:
        path = dest / name
        text = path.read_text()
        if text.count(today) != 1:
            raise ValueError(f"{name} no longer holds what the next release changes: {today!r}")
        path.write_text(text.replace(today, tomorrow))
    migrations = dest / "shop" / "migrations"
    previous = max(p.stem for p in migrations.glob("[0-9][0-9][0-9][0-9]_*.py"))
    number = int(previous[:4]) + 1
    (migrations / f"{number:04d}_order_{COLUMN}.py").write_text(MIGRATION.format(previous=previous, column=COLUMN))
    return dest
