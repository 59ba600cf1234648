"""Records of format 5 may be in the store: a snapstore that knows revisions up to 0017 reads
formats 1 to 4 only.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05

No table changes.  From this revision snapstore writes records of format 5
(``docs/record-format.md``: a run's stories after its first compressed against the first's
record), which an older snapstore refuses one by one ("record format version 5 is not
known"), and whose ``verify`` would list every such record as bad.  As with 0017, the
revision makes an older snapstore refuse the whole upgraded store at open instead, until
its machine is upgraded too.  A downgrade changes no row: format-5 records written since
stay, and the older snapstore it serves refuses each of them by its version when read.
"""

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the revision itself says that format-5 records may be stored."""


def downgrade() -> None:
    """Nothing to change (the records stay; see the module's note)."""
