import { useState } from 'preact/hooks';
import type { FileEntry, SnapshotDetail, V1 } from '../api';
import { DataTable, ErrorBox, Section, Time, useAction, useLoad } from '../components';
import { bytesText } from '../time';

function parentOf(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Saves a blob under `name` through a temporary object URL. */
function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Listing({ api, sid }: { api: V1; sid: string }) {
  const [path, setPath] = useState('/');
  const { data, error } = useLoad(() => api.files(sid, path), [sid, path]);
  const download = useAction();
  const open = (f: FileEntry) => (f.type === 'directory' ? setPath(f.path) : void download.run(async () => saveBlob(await api.fileContent(sid, f.path), f.name)));
  return (
    <div>
      <p>
        Folder <code data-testid="browse-path">{path}</code>{' '}
        {path !== '/' ? (
          <button type="button" class="secondary" onClick={() => setPath(parentOf(path))}>
            Up one folder
          </button>
        ) : null}
      </p>
      <ErrorBox error={error ?? download.error} />
      {data ? (
        <>
          <DataTable heads={['Name', 'Size', 'Modified', 'Mode']} caption={`Files in ${path}`}>
              {data.files.map((f) => (
                <tr key={f.path}>
                  <td>
                    {f.type === 'directory' || f.type === 'file' ? (
                      <button type="button" class="link" onClick={() => open(f)} aria-label={f.type === 'directory' ? `Open folder ${f.name}` : `Download ${f.name}`}>
                        {f.type === 'directory' ? `${f.name}/` : f.name}
                      </button>
                    ) : (
                      <span>{f.name}</span>
                    )}
                  </td>
                  <td>{f.type === 'file' ? bytesText(f.size) : '–'}</td>
                  <td>
                    <Time value={f.mtime} />
                  </td>
                  <td>
                    <code>{f.mode}</code>
                  </td>
                </tr>
              ))}
          </DataTable>
          {data.truncated ? <p class="muted">Only the first entries are shown.</p> : null}
        </>
      ) : null}
    </div>
  );
}

/**
 * File recovery: mount the snapshot read-only on the Lifeboat host, browse its files and
 * download them, dismount. The API wants a VM of the project to record the mount against.
 */
export function FileBrowser({ api, snapshot: s, onChange }: { api: V1; snapshot: SnapshotDetail; onChange: () => void }) {
  const action = useAction();
  const vmId = s.instances?.[0]?.id;
  const mountError = s.metadata?.find((m) => m.key === 'mount_error')?.value;
  if (!['available', 'mounting', 'mounted'].includes(s.status)) return null;
  return (
    <Section title="Files" id="files-h">
      {s.status === 'available' ? (
        <p>
          Mount this snapshot read-only to browse and download its files.{' '}
          <button type="button" disabled={action.busy || !vmId} onClick={() => void action.run(async () => (await api.mount(s.id, vmId ?? ''), onChange()))}>
            Mount snapshot
          </button>
        </p>
      ) : null}
      {mountError && s.status === 'available' ? <p class="error-text">The last mount failed: {mountError}</p> : null}
      {s.status === 'mounting' ? <p aria-busy="true">Mounting… (the file systems are being opened)</p> : null}
      {s.status === 'mounted' ? (
        <>
          <button type="button" class="secondary" disabled={action.busy} onClick={() => void action.run(async () => (await api.dismount(s.id), onChange()))}>
            Dismount
          </button>
          <Listing api={api} sid={s.id} />
        </>
      ) : null}
      <ErrorBox error={action.error} />
    </Section>
  );
}
