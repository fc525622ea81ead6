/**
 * Reads the restore-options files of `snapshot-selective-restore` / `snapshot-inplace-restore`.
 * Tempest writes them with Python's `str(dict)`, so besides JSON this accepts the Python literal
 * subset that repr() produces: single- or double-quoted strings (optional u/b/r prefix,
 * backslash escapes), True/False/None (and JSON's true/false/null), ints and floats, lists,
 * tuples (→ arrays), dicts, trailing commas and `#` comments. Anything else is a SyntaxError
 * naming the line and column.
 */
export function parseLiteral(text: string): unknown {
  const p = new Parser(text);
  p.ws();
  const v = p.value();
  p.ws();
  if (!p.done()) p.fail('unexpected text after the value');
  return v;
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  done(): boolean {
    return this.i >= this.s.length;
  }

  fail(msg: string): never {
    const before = this.s.slice(0, this.i);
    const line = before.split('\n').length;
    const col = this.i - before.lastIndexOf('\n');
    throw new SyntaxError(`${msg} at line ${line} column ${col}`);
  }

  ws(): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\ufeff') this.i++;
      else if (c === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      } else return;
    }
  }

  value(): unknown {
    const c = this.s[this.i];
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '{') return this.dict();
    if (c === '[') return this.seq('[', ']');
    if (c === '(') return this.seq('(', ')');
    if (c === '"' || c === "'") return this.str();
    if (/[uUbBrR]/.test(c) && /["']/.test(this.s[this.i + 1] ?? '')) return this.str();
    if (c === '-' || c === '+' || c === '.' || (c >= '0' && c <= '9')) return this.num();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i));
    if (m) {
      const w = m[0];
      const consts: Record<string, unknown> = { True: true, False: false, None: null, true: true, false: false, null: null };
      if (w in consts) {
        this.i += w.length;
        return consts[w];
      }
      this.fail(`unknown name '${w}'`);
    }
    return this.fail(`unexpected character '${c}'`);
  }

  private dict(): Record<string, unknown> {
    this.i++; // {
    const out: Record<string, unknown> = {};
    this.ws();
    while (this.s[this.i] !== '}') {
      const k = this.value();
      if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'boolean' && k !== null) this.fail('dict keys must be strings or numbers');
      this.ws();
      if (this.s[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      this.ws();
      out[String(k === null ? 'None' : k)] = this.value();
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        this.ws();
      } else if (this.s[this.i] !== '}') this.fail("expected ',' or '}'");
    }
    this.i++;
    return out;
  }

  private seq(open: string, close: string): unknown[] {
    this.i++; // open
    const out: unknown[] = [];
    this.ws();
    while (this.s[this.i] !== close) {
      if (this.done()) this.fail(`missing '${close}' for '${open}'`);
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        this.ws();
      } else if (this.s[this.i] !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.i++;
    return out;
  }

  private str(): string {
    let raw = false;
    while (/[uUbBrR]/.test(this.s[this.i] ?? '')) {
      if (/[rR]/.test(this.s[this.i]!)) raw = true;
      this.i++;
    }
    const q = this.s[this.i]!;
    const triple = this.s.startsWith(q.repeat(3), this.i);
    const end = triple ? q.repeat(3) : q;
    this.i += end.length;
    let out = '';
    for (;;) {
      if (this.done()) this.fail('unterminated string');
      if (this.s.startsWith(end, this.i)) {
        this.i += end.length;
        return out;
      }
      const c = this.s[this.i]!;
      if (c === '\n' && !triple) this.fail('newline in string');
      if (c === '\\') {
        const n = this.s[this.i + 1];
        if (n === undefined) this.fail('unterminated string');
        if (raw) {
          out += c + n;
          this.i += 2;
          continue;
        }
        this.i += 2;
        switch (n) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case '0':
            out += '\0';
            break;
          case '\n':
            break; // line continuation
          case 'x':
            out += this.hexChar(2);
            break;
          case 'u':
            out += this.hexChar(4);
            break;
          case 'U':
            out += this.hexChar(8);
            break;
          case '/':
            out += '/';
            break;
          default:
            // \\, \', \" map to the char; unknown escapes stay as written (Python keeps them).
            out += n === '\\' || n === "'" || n === '"' ? n : `\\${n}`;
        }
        continue;
      }
      out += c;
      this.i++;
    }
  }

  private hexChar(len: number): string {
    const h = this.s.slice(this.i, this.i + len);
    if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(h)) this.fail('bad escape');
    this.i += len;
    return String.fromCodePoint(parseInt(h, 16));
  }

  private num(): number {
    const m = /^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?/.exec(this.s.slice(this.i));
    if (!m) this.fail('bad number');
    this.i += m[0].length;
    const n = Number(m[0].replace(/_/g, ''));
    if (!Number.isFinite(n)) this.fail('bad number');
    return n;
  }
}
