import { useEffect, useRef, useState } from 'preact/hooks';
import type { SnapshotDetail, WorkloadDetail } from '../api';
import { Section } from '../components';
import { storageNumbers } from '../storage-data';
import { bytesText, localText, parseWireTime } from '../time';

/**
 * Storage of one workload: full vs incremental bytes, the data reduction ratio, and the stored
 * bytes over time as a chart. The chart library (uPlot) is loaded only when this section
 * shows, so the first page does not wait for it.
 */
export function StorageSection({ w, snaps }: { w: WorkloadDetail; snaps: SnapshotDetail[] }) {
  const n = storageNumbers(snaps, parseWireTime);
  const box = useRef<HTMLDivElement>(null);
  const [chartError, setChartError] = useState<string | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || n.series[0].length === 0) return;
    let dispose: (() => void) | undefined;
    let live = true;
    import('../storage-chart').then(
      (m) => {
        if (live) dispose = m.drawStorageChart(el, n.series, Math.min(el.clientWidth || 600, 900));
      },
      () => setChartError('The chart could not be loaded.'),
    );
    return () => {
      live = false;
      dispose?.();
    };
  }, [JSON.stringify(n.series)]);
  return (
    <Section title="Storage" id="storage-h">
      <dl class="summary" data-testid="storage-numbers">
        <dt>Stored in total</dt>
        <dd>{bytesText(w.storage_usage.usage)}</dd>
        <dt>Full snapshots</dt>
        <dd>
          {n.fullCount} · {bytesText(n.fullBytes)}
        </dd>
        <dt>Incremental snapshots</dt>
        <dd>
          {n.incrementalCount} · {bytesText(n.incrementalBytes)}
        </dd>
        <dt>Data reduction</dt>
        <dd data-testid="reduction">
          {n.reduction === null ? '–' : `${n.reduction.toFixed(1)} : 1`} <span class="muted">(protected {bytesText(n.logicalBytes)} ÷ stored; dedup, change tracking and compression)</span>
        </dd>
      </dl>
      {n.series[0].length > 0 ? (
        <figure class="chart">
          <div ref={box} class="chart-box" role="img" aria-label="Stored bytes of this workload over time, with the bytes each full and incremental snapshot added" />
          <figcaption class="muted">Stored bytes over time (line) and what each snapshot added (bars: full, incremental).</figcaption>
          {chartError ? <p class="error-text">{chartError}</p> : null}
          <details>
            <summary>The chart's numbers</summary>
            <table>
              <thead>
                <tr>
                  <th scope="col">Finished</th>
                  <th scope="col">Added (full)</th>
                  <th scope="col">Added (incremental)</th>
                  <th scope="col">Stored so far</th>
                </tr>
              </thead>
              <tbody>
                {n.series[0].map((t, i) => (
                  <tr key={t + ':' + i}>
                    <td>{localText(new Date(t * 1000))}</td>
                    <td>{bytesText(n.series[2][i] ?? null)}</td>
                    <td>{bytesText(n.series[3][i] ?? null)}</td>
                    <td>{bytesText(n.series[1][i])}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </figure>
      ) : (
        <p class="muted">No finished snapshots yet.</p>
      )}
    </Section>
  );
}
