/**
 * containerd's filter language, as List/Walk receive it:
 *
 *   selectors := selector ("," selector)*       all must match
 *   selector  := fieldpath [operator value]     no operator: the field must be present
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z][A-Za-z0-9_]*
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+
 *
 * Several filter strings match when any of them does. Quotes are Go-style "..." (or '...'); a regular
 * expression after ~= may also be quoted with /.../ or |...|. A parse error is InvalidArgument, with the
 * position marked the way containerd marks it.
 */
import { invalidArgument } from './errors';
import type { Info } from './types';

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  op: Operator;
  value: string;
  re?: RegExp;
}

export type Predicate = (info: Info) => boolean;

class Parser {
  private pos = 0;
  constructor(private readonly input: string) {}

  fail(msg: string, at = this.pos): never {
    const s = this.input;
    const where = at < s.length ? `[${s.slice(0, at)} >|${s[at]}|< ${s.slice(at + 1)}]` : `[${s}]`;
    throw invalidArgument(`filters: parse error: ${where}: ${msg}`);
  }

  private skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos]!)) this.pos++;
  }

  private peek(): string | undefined {
    this.skipSpace();
    return this.input[this.pos];
  }

  parse(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const c = this.peek();
      if (c === undefined) return out;
      if (c !== ',') this.fail(`unexpected input: ${c}`);
      this.pos++;
      out.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = [this.field()];
    while (this.peek() === '.') {
      this.pos++;
      fieldpath.push(this.field());
    }
    const c = this.peek();
    if (c === undefined || c === ',') return { fieldpath, op: 'present', value: '' };
    const op = this.operator();
    const value = this.value(op === '~=');
    const sel: Selector = { fieldpath, op, value };
    if (op === '~=') {
      try {
        sel.re = new RegExp(value);
      } catch (e) {
        this.fail(`invalid regular expression ${JSON.stringify(value)}: ${(e as Error).message}`);
      }
    }
    return sel;
  }

  private field(): string {
    const c = this.peek();
    if (c === '"' || c === "'") return this.quoted(false);
    const m = /^[A-Za-z][A-Za-z0-9_]*/.exec(this.input.slice(this.pos));
    if (!m) this.fail('expected field or quoted');
    this.pos += m[0].length;
    return m[0];
  }

  private operator(): Operator {
    const two = this.input.slice(this.pos, this.pos + 2);
    if (two === '==' || two === '!=' || two === '~=') {
      this.pos += 2;
      return two;
    }
    return this.fail('expected an operator ("=="|"!="|"~=")');
  }

  private value(allowAltQuotes: boolean): string {
    const c = this.peek();
    if (c === undefined) this.fail('expected value or quoted');
    // containerd's scanner reads / and | as quotes everywhere; only ~= accepts them.
    if (c === '"' || c === "'" || c === '/' || c === '|') return this.quoted(allowAltQuotes);
    const m = /^[^\s,]+/.exec(this.input.slice(this.pos));
    if (!m) this.fail('expected value or quoted');
    this.pos += m[0].length;
    return m[0];
  }

  private quoted(allowAlt: boolean): string {
    const start = this.pos;
    const q = this.input[this.pos]!;
    if (!allowAlt && q !== '"' && q !== "'") this.fail('invalid quote encountered');
    this.pos++;
    let out = '';
    const raw = q === '/' || q === '|';
    while (this.pos < this.input.length) {
      const c = this.input[this.pos++]!;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.input[this.pos++];
      if (e === undefined) break;
      if (raw) {
        // In /regex/ only the delimiter is escaped; everything else stays for the regex engine.
        out += e === q ? q : '\\' + e;
        continue;
      }
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", a: '\x07', b: '\b', f: '\f', v: '\v' };
      if (e in simple) {
        out += simple[e];
      } else if (e === 'x' || e === 'u' || e === 'U') {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = this.input.slice(this.pos, this.pos + len);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) this.fail('unquoting failed: invalid syntax', start);
        out += String.fromCodePoint(parseInt(hex, 16));
        this.pos += len;
      } else {
        this.fail('unquoting failed: invalid syntax', start);
      }
    }
    return this.fail('unquoting failed: unterminated quoted string', start);
  }
}

/**
 * What a field path means for a snapshot, as containerd's snapshot adaptor defines it: kind, name and parent
 * are always present (so `parent==""` selects snapshots without a parent), a label only when it is set.
 */
function field(info: Info, path: string[]): { value: string; present: boolean } {
  switch (path[0]) {
    case 'kind':
      return { value: info.kind, present: true };
    case 'name':
      return { value: info.name, present: true };
    case 'parent':
      return { value: info.parent, present: true };
    case 'labels': {
      const key = path.slice(1).join('.');
      const value = info.labels[key];
      return value === undefined ? { value: '', present: false } : { value, present: true };
    }
    default:
      return { value: '', present: false };
  }
}

function matches(sel: Selector, info: Info): boolean {
  const { value, present } = field(info, sel.fieldpath);
  switch (sel.op) {
    case 'present':
      return present;
    case '==':
      return present && value === sel.value;
    case '!=':
      return value !== sel.value;
    case '~=':
      return sel.re!.test(value);
  }
}

/** Parses filter strings (any may match) into one predicate. No filters, or only empty ones, match everything. */
export function parseFilters(filters: readonly string[]): Predicate {
  const groups = filters.filter((f) => f !== '').map((f) => new Parser(f).parse());
  if (groups.length === 0 || groups.length < filters.length) return () => true;
  return (info) => groups.some((sels) => sels.every((s) => matches(s, info)));
}
