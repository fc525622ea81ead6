import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { localText, parseWireTime, utcText } from './time';

/** A time from the API in the user's zone; the UTC time on hover (title). */
export function Time({ value }: { value: string | null | undefined }) {
  const d = parseWireTime(value);
  if (!d) return <span>–</span>;
  return (
    <time dateTime={d.toISOString()} title={utcText(d)}>
      {localText(d)}
    </time>
  );
}

export function Status({ value }: { value: string }) {
  return <span class={`status status-${value.replace(/[^a-z_]/gi, '')}`}>{value}</span>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {msg}
    </p>
  );
}

/** A labelled progress bar (percent 0–100) with the current message. */
export function ProgressBar({ label, percent, message }: { label: string; percent: number; message?: string | null }) {
  const p = Math.max(0, Math.min(100, Math.round(percent)));
  return (
    <div class="progress">
      <div class="progress-label">
        <span>{label}</span> <strong data-testid="progress-percent">{p} %</strong> {message ? <span class="muted">{message}</span> : null}
      </div>
      <div class="bar" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={p}>
        <div class="fill" style={{ width: `${p}%` }} />
      </div>
    </div>
  );
}

export function Page({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  const h = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Lifeboat`;
    h.current?.focus(); // keyboard and screen-reader users land on the new page's heading
  }, [title]);
  return (
    <section>
      <div class="page-head">
        <h1 tabIndex={-1} ref={h}>
          {title}
        </h1>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** Loads data once per key; `reload` fetches again. */
export function useLoad<T>(load: () => Promise<T>, key: unknown[]): { data: T | undefined; error: unknown; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => live && (setData(d), setError(null)),
      (e: unknown) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...key, tick]);
  return { data, error, reload: useCallback(() => setTick((t) => t + 1), []) };
}

/**
 * Calls `step` every `ms` while `active`, one call at a time, until it returns true (done).
 * The page's live progress comes from polling the public detail endpoints.
 */
export function usePoll(active: boolean, ms: number, step: () => Promise<boolean>): void {
  const stepRef = useRef(step);
  stepRef.current = step;
  useEffect(() => {
    if (!active) return;
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      let done = false;
      try {
        done = await stepRef.current();
      } catch {
        done = false; // a failed poll is retried on the next tick
      }
      if (!stop && !done) timer = setTimeout(run, ms);
    };
    void run();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [active, ms]);
}
