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

/** A status word, coloured by `tone` (a status whose colour it borrows; default: itself). */
export function Status({ value, tone }: { value: string; tone?: string }) {
  return <span class={`status status-${(tone ?? value).replace(/[^a-z_]/gi, '')}`}>{value}</span>;
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

/** A label, the input, and the field's error tied to it for screen readers. */
export function Field(props: { id: string; label: string; error?: string | undefined; hint?: string; children: (a: Record<string, unknown>) => ComponentChildren }) {
  const err = props.error;
  const describedBy = [err ? `${props.id}-error` : '', props.hint ? `${props.id}-hint` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      {props.children({ id: props.id, name: props.id, 'aria-invalid': err ? 'true' : undefined, 'aria-describedby': describedBy })}
      {props.hint ? (
        <small id={`${props.id}-hint`} class="muted">
          {props.hint}
        </small>
      ) : null}
      {err ? (
        <small id={`${props.id}-error`} class="field-error">
          {err}
        </small>
      ) : null}
    </div>
  );
}

/**
 * Runs user actions one at a time: `busy` while one runs, its error kept for an ErrorBox.
 * `run` returns whether the action succeeded.
 */
export function useAction(): { busy: boolean; error: unknown; run: (fn: () => Promise<unknown>) => Promise<boolean>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/** A titled section of a page (h2) with an accessible name. */
export function Section({ title, id, children }: { title: string; id: string; children: ComponentChildren }) {
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

/**
 * A table with column headings, scrolling sideways on narrow screens (the scroller is
 * focusable so keyboard users can scroll it). An empty heading is read as `Actions`.
 */
export function DataTable(props: { heads: string[]; caption?: string; testId?: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" tabIndex={0}>
      <table data-testid={props.testId}>
        {props.caption ? <caption class="sr-only">{props.caption}</caption> : null}
        <thead>
          <tr>
            {props.heads.map((h, i) => (
              <th scope="col" key={i}>
                {h === '' ? <span class="sr-only">Actions</span> : h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

/** A table cell naming a VM (or another object) with its id below. */
export function NameCell({ name, id }: { name: string; id: string }) {
  return (
    <td>
      <strong>{name}</strong>
      <div class="muted">
        <code>{id}</code>
      </div>
    </td>
  );
}
