import type { Repository } from './repository.js';

/**
 * One open Repository per configured backup target, by target name (lib/target.ts). A
 * workload's snapshots, and everything that later reads, verifies, collects or deletes them,
 * use the repository of the target the snapshot recorded; null (rows from before several
 * targets) is the default one.
 */
export class RepositorySet {
  constructor(
    private readonly repos: ReadonlyMap<string, Repository>,
    readonly defaultName: string,
  ) {
    if (!repos.has(defaultName)) throw new Error(`default backup target ${defaultName} has no repository`);
  }

  /** A set of one repository (single-target setups and tests). */
  static only(repo: Repository, name = 'default'): RepositorySet {
    return new RepositorySet(new Map([[name, repo]]), name);
  }

  /** The repository of target `name` (null: the default); a target this node does not know throws. */
  get(name: string | null): Repository {
    const r = this.repos.get(name ?? this.defaultName);
    if (!r) throw new Error(`backup target ${name} is not configured on this node (LIFEBOAT_TARGETS)`);
    return r;
  }

  get default(): Repository {
    return this.get(null);
  }

  /** Every target: name, whether it is the default, its repository. */
  entries(): { name: string; isDefault: boolean; repo: Repository }[] {
    return [...this.repos].map(([name, repo]) => ({ name, isDefault: name === this.defaultName, repo }));
  }
}

/**
 * Job dependencies take either one Repository (single-target setups, tests) or the set; this
 * turns either into the set, so handlers always look a snapshot's target up.
 */
export function asRepositorySet(r: Repository | RepositorySet): RepositorySet {
  return r instanceof RepositorySet ? r : RepositorySet.only(r);
}
