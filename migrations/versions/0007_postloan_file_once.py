"""Post-loan files filed into the credit file keep no second copy in the database: the archive's
object store holds the one copy (so destroying a credit file leaves nothing behind).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('postloan_file', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=True)
    # Files already in the credit file: their bytes are in the object store.
    op.execute("UPDATE postloan_file SET data = NULL WHERE archive_document_id IS NOT NULL")


def downgrade():
    bind = op.get_bind()
    filed = bind.execute(sa.text("SELECT count(*) FROM postloan_file WHERE data IS NULL")).scalar()
    if filed:
        raise RuntimeError(
            f"{filed} post-loan files are kept only in the object store; downgrading below 0007 would need "
            "their bytes copied back into postloan_file.data first.")
    with op.batch_alter_table('postloan_file', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)
