"""catalogue, checks, versions, changes

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 20:33:44.684135
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('codec', sa.String(length=8), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('services',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('department', sa.Text(), nullable=False),
    sa.Column('department_id', sa.String(length=64), nullable=False),
    sa.Column('regulation', sa.String(length=24), nullable=False),
    sa.Column('suspended', sa.Boolean(), nullable=False),
    sa.Column('responsible', sa.Text(), nullable=False),
    sa.Column('contact', sa.Text(), nullable=False),
    sa.Column('working_days', sa.Boolean(), nullable=False),
    sa.Column('real_update_classes', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services'))
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_round_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('schedule_lag_s', sa.Float(), nullable=False),
    sa.Column('checks_done', sa.BigInteger(), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    op.create_table('pages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_check_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_full_fetch_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_outcome', sa.String(length=16), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_duration_s', sa.Float(), nullable=True),
    sa.Column('last_bytes', sa.Integer(), nullable=True),
    sa.Column('last_version_id', sa.Integer(), nullable=True),
    sa.Column('first_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_change_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_real_change_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('last_modified', sa.Text(), nullable=True),
    sa.Column('tls_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('calibrated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_pages_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pages')),
    sa.UniqueConstraint('service_id', 'url', name=op.f('uq_pages_service_id'))
    )
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pages_service_id'), ['service_id'], unique=False)

    op.create_table('noise_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_noise_rules_page_id_pages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_noise_rules'))
    )
    with op.batch_alter_table('noise_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_noise_rules_page_id'), ['page_id'], unique=False)

    op.create_table('tallies',
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_tallies_page_id_pages')),
    sa.PrimaryKeyConstraint('page_id', 'family', 'key', name=op.f('pk_tallies'))
    )
    op.create_table('versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content_sha', sa.String(length=64), nullable=False),
    sa.Column('raw_sha', sa.String(length=64), nullable=True),
    sa.Column('fp_raw', sa.String(length=64), nullable=False),
    sa.Column('fp_text', sa.String(length=64), nullable=False),
    sa.Column('fp_main', sa.String(length=64), nullable=False),
    sa.Column('fp_main_dated', sa.String(length=64), nullable=False),
    sa.Column('fp_main_masked', sa.String(length=64), nullable=False),
    sa.Column('fp_links', sa.String(length=64), nullable=False),
    sa.Column('fp_documents', sa.String(length=64), nullable=False),
    sa.Column('declared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['content_sha'], ['blobs.sha256'], name=op.f('fk_versions_content_sha_blobs')),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_versions_page_id_pages')),
    sa.ForeignKeyConstraint(['raw_sha'], ['blobs.sha256'], name=op.f('fk_versions_raw_sha_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_versions')),
    sa.UniqueConstraint('page_id', 'key_hash', name=op.f('uq_versions_page_id'))
    )
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_versions_page_id'), ['page_id'], unique=False)

    op.create_table('changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('from_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('to_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('change_class', sa.String(length=16), nullable=False),
    sa.Column('is_real', sa.Boolean(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.Column('edited', sa.Integer(), nullable=False),
    sa.Column('evidence_sha', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['evidence_sha'], ['blobs.sha256'], name=op.f('fk_changes_evidence_sha_blobs')),
    sa.ForeignKeyConstraint(['from_version_id'], ['versions.id'], name=op.f('fk_changes_from_version_id_versions')),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_changes_page_id_pages')),
    sa.ForeignKeyConstraint(['to_version_id'], ['versions.id'], name=op.f('fk_changes_to_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_changes'))
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_page_detected', ['page_id', 'detected_at'], unique=False)

    op.create_table('checks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=False),
    sa.Column('final_url', sa.Text(), nullable=True),
    sa.Column('redirects', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('quality', sa.String(length=16), nullable=True),
    sa.Column('change_class', sa.String(length=16), nullable=True),
    sa.Column('version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('fp_raw', sa.String(length=64), nullable=True),
    sa.Column('last_modified', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_checks_page_id_pages')),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_checks_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checks'))
    )
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.create_index('ix_checks_page_started', ['page_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_checks_started_at'), ['started_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checks_started_at'))
        batch_op.drop_index('ix_checks_page_started')

    op.drop_table('checks')
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index('ix_changes_page_detected')

    op.drop_table('changes')
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_versions_page_id'))

    op.drop_table('versions')
    op.drop_table('tallies')
    with op.batch_alter_table('noise_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_noise_rules_page_id'))

    op.drop_table('noise_rules')
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pages_service_id'))

    op.drop_table('pages')
    op.drop_table('workers')
    op.drop_table('services')
    op.drop_table('blobs')
