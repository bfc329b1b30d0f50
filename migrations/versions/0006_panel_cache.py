"""Dashboard speed: data versions per institution, the panel cache, and the loan list's index
on (branch, disbursement date).

Written by hand to match portal/auditing/models.py and portal/loans/models.py; runs on SQLite
and PostgreSQL.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('data_version',
    sa.Column('institution_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_data_version'))
    )
    op.create_table('audit_panel_cache',
    sa.Column('institution_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('panel', sa.String(length=40), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('fingerprint', sa.String(length=80), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', 'panel', 'locale', name=op.f('pk_audit_panel_cache'))
    )
    with op.batch_alter_table('loan', schema=None) as batch_op:
        batch_op.create_index('ix_loan_branch_disbursed', ['branch_id', 'disbursed_on', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('loan', schema=None) as batch_op:
        batch_op.drop_index('ix_loan_branch_disbursed')
    op.drop_table('audit_panel_cache')
    op.drop_table('data_version')
