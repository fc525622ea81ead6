/**
 * Who is asking: built by identity/ from a validated token (never from client headers) and
 * passed to every service call. Services scope every tenant query by `projectId` unless
 * policy granted admin.
 */
export interface RequestContext {
  requestId: string;
  userId: string;
  userName: string;
  projectId: string;
  projectName: string;
  /** Role names of the token. */
  roles: string[];
  /** Legacy OpenStack rule: the `admin` role on any project makes a cloud admin. */
  isAdmin: boolean;
}
