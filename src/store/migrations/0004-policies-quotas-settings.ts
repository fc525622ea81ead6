import type { Kysely } from 'kysely';

/**
 * Workload policies, project quotas and settings (workloadmgr-api §2.7–§2.9). Same dialect rules
 * as 0001: text/integer/bigint only, epoch-ms timestamps, JSON as text.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('workload_policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  // One row per policy field (the wire shows each as a record with its own id).
  await db.schema
    .createTable('workload_policy_fields')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('policy_id', 'text', (c) => c.notNull())
    .addColumn('field_name', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint')
    .execute();
  await db.schema.createIndex('workload_policy_fields_name').unique().on('workload_policy_fields').columns(['policy_id', 'field_name']).execute();

  await db.schema
    .createTable('workload_policy_assignments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('policy_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('project_name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('workload_policy_assignments_pair').unique().on('workload_policy_assignments').columns(['policy_id', 'project_id']).execute();
  await db.schema.createIndex('workload_policy_assignments_project').on('workload_policy_assignments').column('project_id').execute();

  // At most one allowed quota per (project, type): enforcement reads a single limit.
  await db.schema
    .createTable('project_allowed_quotas')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('quota_type_id', 'text', (c) => c.notNull())
    .addColumn('allowed_value', 'bigint', (c) => c.notNull())
    .addColumn('high_watermark', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('project_allowed_quotas_type').unique().on('project_allowed_quotas').columns(['project_id', 'quota_type_id']).execute();

  // Settings are per project. `secret` = 1 when `value` is sealed (AES-GCM, store/setting.store.ts).
  await db.schema
    .createTable('settings')
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('secret', 'integer', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull())
    .addColumn('is_hidden', 'integer', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint')
    .addPrimaryKeyConstraint('settings_pk', ['project_id', 'name'])
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
