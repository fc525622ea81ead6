import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bytesText } from './time';

/**
 * Draws the storage chart into `el` (uPlot: small, maintained, canvas); returns its disposer.
 * Kept in its own module so it is a separate chunk, loaded on the workload page only.
 */
export function drawStorageChart(el: HTMLElement, data: [number[], number[], (number | null)[], (number | null)[]], width: number): () => void {
  const bars = uPlot.paths.bars?.({ size: [0.6, 40] });
  const axisBytes = (_u: uPlot, vals: number[]) => vals.map((v) => bytesText(v));
  const chart = new uPlot(
    {
      width,
      height: 260,
      series: [
        {},
        { label: 'Stored in total', stroke: '#0a58ca', width: 2, value: (_u, v) => bytesText(v) },
        { label: 'Full', stroke: '#1a7f37', fill: 'rgba(26,127,55,0.55)', paths: bars, points: { show: false }, value: (_u, v) => (v === null ? '–' : bytesText(v)) },
        { label: 'Incremental', stroke: '#9a6700', fill: 'rgba(154,103,0,0.55)', paths: bars, points: { show: false }, value: (_u, v) => (v === null ? '–' : bytesText(v)) },
      ],
      axes: [{}, { values: axisBytes, size: 80 }],
      scales: { x: { time: true } },
    },
    data,
    el,
  );
  return () => chart.destroy();
}
