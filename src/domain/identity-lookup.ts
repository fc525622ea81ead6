/**
 * What disaster-recovery use cases ask the identity source (the identity file or Keystone):
 * whether a project and a user still exist, and whether the user may work in the project.
 * `null` = the source could not tell (unreachable): callers must not treat it as "gone".
 */
export interface IdentityLookup {
  projectExists(projectId: string): Promise<boolean | null>;
  userExists(userId: string): Promise<boolean | null>;
  /** True when the user holds any role on the project. */
  userInProject(userId: string, projectId: string): Promise<boolean | null>;
  /** The project's name, or null when unknown. */
  projectName(projectId: string): Promise<string | null>;
}
