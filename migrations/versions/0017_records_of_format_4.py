"""Records of format 4 may be in the store: a snapstore that knows revisions up to 0016 reads
formats 1 to 3 only.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05

No table changes.  From this revision snapstore writes records of format 4
(``docs/record-format.md``: format codes stored against what each value predicts), which an
older snapstore refuses one by one ("record format version 4 is not known"), and whose
``verify`` would list every new record as bad.  The revision is what keeps that from
happening in a store several machines share: an older snapstore refuses the whole upgraded
store at open, as newer than it knows, until its machine is upgraded too.  A downgrade
changes no row either: format-4 records written since stay, and the older snapstore it
serves refuses each of them by its version when read.
"""

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the revision itself says that format-4 records may be stored."""


def downgrade() -> None:
    """Nothing to change (the records stay; see the module's note)."""
