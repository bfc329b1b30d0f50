"""Indexes for counting the reports that wait: submitted inspections by (status, branch) and
escalations by (receiving institution, status), which replaces the receiving institution's own
index (its leading column serves the same lookups).

Written by hand to match portal/postloan/models.py; runs on SQLite and PostgreSQL.

Revision ID: 0008
Revises: 0007
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_escalation_institution_id')
        batch_op.create_index('ix_inspection_escalation', ['escalation_institution_id', 'escalation_status'],
                              unique=False)
        batch_op.create_index('ix_inspection_status_branch', ['status', 'branch_id'], unique=False)


def downgrade():
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_status_branch')
        batch_op.drop_index('ix_inspection_escalation')
        batch_op.create_index('ix_inspection_escalation_institution_id', ['escalation_institution_id'], unique=False)
