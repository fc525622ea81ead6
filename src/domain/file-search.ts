/** File search (workloadmgr-api §2.6, §3.4): executing → searching → completed | error; cancel → cancelled. */
export type FileSearchStatus = 'executing' | 'searching' | 'completed' | 'error' | 'cancelling' | 'cancelled';

export const RUNNING_SEARCH_STATES: FileSearchStatus[] = ['executing', 'searching'];

export interface FileSearch {
  id: number;
  project_id: string;
  user_id: string;
  vm_id: string;
  workload_id: string;
  filepath: string;
  /** The snapshots searched, newest first (selected when the search was created). */
  snapshot_ids: string[];
  status: FileSearchStatus;
  progress_percent: number;
  error_msg: string | null;
  /** The vendor's result text (a JSON / Python literal list); null until completed. */
  json_resp: string | null;
  created_at: number;
  updated_at: number | null;
  deleted_at: number | null;
}

/** `filepath` must be an absolute path (globs allowed), as the vendor checks it. */
export const SEARCH_PATH = /^(\/[^/ ]*)+\/?$/;
